using ERCache.Tests.Infrastructure;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace ERCache.Tests;

/// <summary>Configuration that does not bind is reported by path, never dropped: values that do not convert, keys
/// that match no setting, and durations written as bare numbers.</summary>
public sealed class ConfigurationBindingTests
{
    [Theory]
    [InlineData("Inference:Timeout", "abc", "ERCache:Models:ctr:Inference:Timeout 'abc' is not a duration; write hh:mm:ss[.fff], such as 00:01:00.")]
    [InlineData("Dimensions", "1e3", "ERCache:Models:ctr:Dimensions '1e3' is not a whole number between -2147483648 and 2147483647.")]
    [InlineData("Direct:Capacity", "3000000000", "ERCache:Models:ctr:Direct:Capacity '3000000000' is not a whole number between -2147483648 and 2147483647.")]
    [InlineData("Direct:Ttl", "60", "ERCache:Models:ctr:Direct:Ttl '60' is a bare number; write a duration such as 00:01:00 (hh:mm:ss) or 00:00:00.050 (a bare number would mean days).")]
    [InlineData("Inference:RunInline", "yes", "ERCache:Models:ctr:Inference:RunInline 'yes' is not true or false.")]
    [InlineData("Direct:MaxBytes", "lots", "ERCache:Models:ctr:Direct:MaxBytes 'lots' is not a whole number (64-bit).")]
    [InlineData("Failover:HugePages", "sometimes", "ERCache:Models:ctr:Failover:HugePages 'sometimes' is not true or false.")]
    public void A_value_that_does_not_convert_is_named_by_path(string key, string value, string expected) =>
        Assert.Equal([expected], ConfigurationTests.ConfigErrors((key, value)));

    [Fact]
    public void Misspelled_keys_and_sections_are_named_with_the_settings_they_could_be()
    {
        var errors = ConfigurationTests.ConfigErrors(("Direct:Capcity", "5"), ("Infrence:Timeout", "00:00:01"));

        Assert.Equal(2, errors.Count);
        Assert.Contains(errors, e => e.StartsWith("ERCache:Models:ctr:Direct:Capcity is not a known setting; TierOptions has Enabled, Ttl, Capacity, MaxBytes, Eviction, Format, HugePages.", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("ERCache:Models:ctr:Infrence is not a known setting; ModelOptions has ", StringComparison.Ordinal));
    }

    [Fact]
    public void A_model_subsection_is_left_to_the_adapter_that_declared_it_and_is_an_unknown_setting_otherwise()
    {
        var keys = new Dictionary<string, string?>
        {
            ["ERCache:Models:ctr:Dimensions"] = "4",
            ["ERCache:Models:ctr:Direct:Ttl"] = "00:01:00",
            ["ERCache:Models:ctr:Failover:Ttl"] = "01:00:00",
            ["ERCache:Models:ctr:Onnx:Path"] = "tower.onnx",
        };

        var undeclared = Assert.Throws<OptionsValidationException>(() => ERCacheOptions.FromConfiguration(ConfigurationTests.Section(keys)));
        var declared = ERCacheOptions.FromConfiguration(ConfigurationTests.Section(keys), modelSections: ["onnx"]);

        Assert.Equal(["ERCache:Models:ctr:Onnx is not a known setting"], undeclared.Failures.Select(f => f[..f.IndexOf(';', StringComparison.Ordinal)]));
        Assert.Equal(4, declared.Models["ctr"].Dimensions);
    }

    [Fact]
    public void Under_DI_a_section_declared_with_AddModelSection_binds_and_an_undeclared_one_fails_at_start()
    {
        static ServiceProvider Build(string section, bool declare)
        {
            var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
            {
                ["Ranking:Models:ctr:Dimensions"] = "4",
                ["Ranking:Models:ctr:Direct:Ttl"] = "00:01:00",
                ["Ranking:Models:ctr:Failover:Ttl"] = "01:00:00",
                [$"Ranking:Models:ctr:{section}:Anything"] = "1",
            }).Build();
            var services = new ServiceCollection().AddSingleton<IConfiguration>(configuration);
            var builder = services.AddERCache("Ranking").AddModel("ctr", new TestTower());
            Assert.Equal("Ranking", builder.SectionPath);
            if (declare)
            {
                builder.AddModelSection(section);
            }

            return services.BuildServiceProvider();
        }

        using var declared = Build("Custom", declare: true);
        using var undeclared = Build("Custom", declare: false);

        Assert.Equal(4, declared.GetRequiredService<EmbeddingCache>().GetPolicy("ctr").Dimensions);
        var error = Assert.Throws<OptionsValidationException>(() => undeclared.GetRequiredService<EmbeddingCache>());
        Assert.Contains(error.Failures, f => f.StartsWith("Ranking:Models:ctr:Custom is not a known setting", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("")]
    [InlineData("direct")]
    public void A_model_section_that_is_empty_or_a_model_setting_is_refused(string name)
    {
        var builder = new ServiceCollection().AddERCache(o => { });

        Assert.ThrowsAny<ArgumentException>(() => builder.AddModelSection(name));
    }

    [Fact]
    public void A_bad_value_beside_other_problems_reports_them_all_and_not_its_own_default()
    {
        var errors = ConfigurationTests.ConfigErrors(("Dimensions", "abc"), ("Direct:Capacity", "0"));

        Assert.Equal(
            [
                "ERCache:Models:ctr:Dimensions 'abc' is not a whole number between -2147483648 and 2147483647.",
                "ERCache:Models:ctr:Direct:Capacity must be positive (got 0).",
            ],
            errors);
    }

    [Fact]
    public void A_model_with_a_bad_value_beside_a_good_model_fails_start_up_instead_of_vanishing()
    {
        string json = ConfiguredHost.Json(ConfiguredHost.Model("good") + "," + ConfiguredHost.Model("bad").Replace("\"Timeout\": \"00:00:00.050\"", "\"Timeout\": \"abc\"", StringComparison.Ordinal));
        using var host = new ConfiguredHost(json);

        var ex = Assert.Throws<OptionsValidationException>(() => host.Services.GetRequiredService<IOptions<ERCacheOptions>>().Value);

        Assert.Contains("ERCache:Models:bad:Inference:Timeout 'abc' is not a duration", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_reload_with_a_value_that_does_not_bind_keeps_the_running_model()
    {
        using var host = new ConfiguredHost(ConfiguredHost.Json(ConfiguredHost.Model("ctr", version: "v1")));
        var cache = host.Cache;
        await cache.GetAsync("ctr", 7, new float[4]);

        host.Reload(ConfiguredHost.Json(ConfiguredHost.Model("ctr", version: "v2", directTtl: "soon"))); // logged, not thrown
        var again = await cache.GetAsync("ctr", 7, new float[4]);

        Assert.Contains(host.Logs.GetSnapshot(), r => r.Message.Contains("ERCache:Models:ctr:Direct:Ttl 'soon' is not a duration", StringComparison.Ordinal));
        Assert.Equal("v1", cache.GetPolicy("ctr").Version);
        Assert.Equal(EmbeddingSource.Direct, again.Source);
    }

    [Fact]
    public void A_valid_section_binds_every_field()
    {
        var options = ERCacheOptions.FromConfiguration(ConfigurationTests.Section(new Dictionary<string, string?>
            {
                ["ERCache:Models:ctr:Dimensions"] = "1",
                ["ERCache:Models:ctr:Direct:Ttl"] = "00:00:30",
                ["ERCache:Models:ctr:Direct:Eviction"] = "sieve",
                ["ERCache:Models:ctr:Direct:HugePages"] = "false",
                ["ERCache:Models:ctr:Failover:Ttl"] = "02:00:00",
                ["ERCache:Models:ctr:Failover:Format"] = "int8",
                ["ERCache:Models:ctr:DefaultVector:0"] = "0.5",
            }));

        var model = options.Models["ctr"];
        Assert.Equal(1, model.Dimensions);
        Assert.Equal(TimeSpan.FromSeconds(30), model.Direct.Ttl);
        Assert.Equal(EvictionStrategy.Sieve, model.Direct.Eviction);
        Assert.False(model.Direct.HugePages);
        Assert.True(model.Failover.HugePages);
        Assert.Equal(StorageFormat.Int8, model.Failover.Format);
        Assert.Equal(EvictionStrategy.Fifo, model.Failover.Eviction);
        Assert.Equal([0.5f], model.DefaultVector!);
    }

    [Fact]
    public void Regional_settings_are_validated_by_path()
    {
        var errors = ConfigurationTests.ConfigErrors();
        var bad = ERCacheOptions.FromConfiguration(ConfigurationTests.Section(new Dictionary<string, string?>
        {
            ["ERCache:Models:ctr:Dimensions"] = "4",
            ["ERCache:Models:ctr:Direct:Ttl"] = "00:01:00",
            ["ERCache:Models:ctr:Failover:Ttl"] = "01:00:00",
            ["ERCache:Models:ctr:Regional:Format"] = "Int8",
        }));
        var ex = Assert.Throws<Microsoft.Extensions.Options.OptionsValidationException>(() => ERCacheOptions.FromConfiguration(ConfigurationTests.Section(new Dictionary<string, string?>
        {
            ["ERCache:Models:ctr:Dimensions"] = "4",
            ["ERCache:Models:ctr:Direct:Ttl"] = "00:01:00",
            ["ERCache:Models:ctr:Failover:Ttl"] = "01:00:00",
            ["ERCache:Models:ctr:Regional:Format"] = "Int4",
            ["ERCache:Regional:Timeout"] = "00:00:00",
            ["ERCache:Regional:QueueCapacity"] = "0",
            ["ERCache:Regional:MaxBatchSize"] = "70000",
            ["ERCache:Regional:CircuitBreaker:BreakDuration"] = "2.00:00:00",
            ["ERCache:Regional:MaxClockSkew"] = "02:00:00",
            ["ERCache:Regional:KeyPrefix"] = "svc:{a}",
        })));

        Assert.Empty(errors);
        Assert.Equal(StorageFormat.Int8, bad.Models["ctr"].Regional.Format);
        Assert.Equal(
            [
                "ERCache:Regional:Timeout must be positive and at most 00:01:00 (got 00:00:00).",
                "ERCache:Regional:QueueCapacity must be between 1 and 10000000 (got 0).",
                "ERCache:Regional:MaxBatchSize must be between 1 and 65536 (got 70000).",
                "ERCache:Regional:MaxClockSkew must be between 00:00:00 and 01:00:00 (got 02:00:00).",
                "ERCache:Regional:KeyPrefix must be 1 to 100 characters without braces (got 'svc:{a}').",
                "ERCache:Regional:CircuitBreaker:BreakDuration must be at most 1.00:00:00, the longest Polly's circuit breaker accepts (got 2.00:00:00).",
                "ERCache:Models:ctr:Regional:Format 'Int4' is not a known storage format; allowed: Float32, Float16, Int8.",
            ],
            ex.Failures);
    }
}
