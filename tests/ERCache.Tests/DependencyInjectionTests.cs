using ERCache.Inference;
using ERCache.Tests.Infrastructure;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Logging.Testing;

namespace ERCache.Tests;

public sealed class DependencyInjectionTests
{
    [Fact]
    public async Task AddERCache_binds_the_ERCache_section_and_AddModel_registers_the_delegate()
    {
        int calls = 0;
        using var host = new ConfiguredHost(
            ConfiguredHost.Json(ConfiguredHost.Model("ctr")),
            b => b.AddModel("ctr", (batch, _) =>
            {
                Interlocked.Increment(ref calls);
                batch.Destination.Span.Fill(1f);
                return ValueTask.CompletedTask;
            }));

        var cache = host.Services.GetRequiredService<IEmbeddingCache>();
        var first = await cache.GetAsync("ctr", 1, new float[4]);
        var second = await cache.GetAsync("ctr", 1, new float[4]);

        Assert.Same(host.Services.GetRequiredService<EmbeddingCache>(), cache);
        Assert.Equal(["ctr"], cache.Models);
        Assert.Equal((EmbeddingSource.Fresh, EmbeddingSource.Direct), (first.Source, second.Source));
        Assert.Equal(1, calls);
    }

    [Fact]
    public void A_second_AddERCache_from_another_source_is_refused_naming_both_and_the_same_section_twice_is_one_cache()
    {
        var services = new ServiceCollection();
        services.AddERCache();
        services.AddERCache(); // the same section again: nothing new
        Assert.Single(services, d => d.ServiceType == typeof(EmbeddingCache));

        var other = Assert.Throws<InvalidOperationException>(() => services.AddERCache("Other"));
        Assert.Contains("configured from configuration section 'ERCache'; configuring it again from configuration section 'Other'", other.Message, StringComparison.Ordinal);
        var code = Assert.Throws<InvalidOperationException>(() => services.AddERCache(o => o.Models["x"] = CacheFixture.DefaultModel(4)));
        Assert.Contains("again from code (AddERCache(configure))", code.Message, StringComparison.Ordinal);

        var inCode = new ServiceCollection();
        inCode.AddERCache(o => o.Models["x"] = CacheFixture.DefaultModel(4));
        Assert.Throws<InvalidOperationException>(() => inCode.AddERCache(o => o.Models["y"] = CacheFixture.DefaultModel(4)));
    }

    [Fact]
    public async Task Inference_can_be_a_keyed_service_the_container_builds()
    {
        using var host = new ConfiguredHost(
            ConfiguredHost.Json(ConfiguredHost.Model("ctr")),
            b => b.AddModel<OnesTower>("ctr"));

        var vector = new float[4];
        var result = await host.Cache.GetAsync("ctr", 1, vector);

        Assert.Equal(EmbeddingSource.Fresh, result.Source);
        Assert.Equal([1f, 1f, 1f, 1f], vector);
    }

    [Fact]
    public async Task A_keyed_inference_registered_directly_is_found()
    {
        using var host = new ConfiguredHost(
            ConfiguredHost.Json(ConfiguredHost.Model("ctr")),
            b => b.Services.AddKeyedSingleton<IEmbeddingInference, OnesTower>("ctr"));

        Assert.Equal(EmbeddingSource.Fresh, (await host.Cache.GetAsync("ctr", 1, new float[4])).Source);
    }

    [Theory]
    [InlineData("CTR")]
    [InlineData("Ctr")]
    public async Task A_keyed_inference_registered_directly_is_found_in_any_case(string key)
    {
        using var host = new ConfiguredHost(
            ConfiguredHost.Json(ConfiguredHost.Model("ctr")),
            b => b.Services.AddKeyedSingleton<IEmbeddingInference, OnesTower>(key));

        Assert.Equal(EmbeddingSource.Fresh, (await host.Cache.GetAsync("ctr", 1, new float[4])).Source);
    }

    [Fact]
    public void A_keyed_inference_registered_after_AddERCache_in_another_case_is_found()
    {
        var services = new ServiceCollection();
        services.AddERCache(o => o.Models["ctr"] = CacheFixture.DefaultModel(4));
        services.AddKeyedSingleton<IEmbeddingInference, OnesTower>("CTR");
        using var sp = services.BuildServiceProvider();

        Assert.Contains("ctr", sp.GetRequiredService<EmbeddingCache>().Models);
    }

    [Fact]
    public void A_keyed_inference_registered_in_two_spellings_is_refused_naming_both()
    {
        var services = new ServiceCollection();
        services.AddERCache(o => o.Models["ctr"] = CacheFixture.DefaultModel(4)).AddModel<OnesTower>("ctr");
        services.AddKeyedSingleton<IEmbeddingInference, OnesTower>("CTR");
        using var sp = services.BuildServiceProvider();

        var ex = Assert.Throws<InvalidOperationException>(() => sp.GetRequiredService<EmbeddingCache>());

        Assert.Contains("under both 'ctr' and 'CTR'; model names are case-insensitive", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AddModel_finds_a_model_configured_in_another_case()
    {
        using var host = new ConfiguredHost(
            ConfiguredHost.Json(ConfiguredHost.Model("ctr")),
            b => b.AddModel<OnesTower>("CTR"));

        Assert.Equal(EmbeddingSource.Fresh, (await host.Cache.GetAsync("Ctr", 1, new float[4])).Source);
    }

    [Fact]
    public void AddModel_twice_for_one_model_in_two_spellings_is_refused()
    {
        var builder = new ServiceCollection().AddERCache(o => { }).AddModel<OnesTower>("ctr");

        var error = Assert.Throws<ArgumentException>(() => builder.AddModel<OnesTower>("CTR"));

        Assert.Contains("The inference of model 'CTR' is already registered (as 'ctr'); model names are case-insensitive.", error.Message);
    }

    [Fact]
    public async Task The_time_provider_registered_in_the_container_is_used()
    {
        using var host = new ConfiguredHost(ConfiguredHost.Json(ConfiguredHost.Model("ctr")));
        Assert.Same(host.Clock, host.Services.GetRequiredService<TimeProvider>());
        Assert.Same(host.Clock, host.Cache.Time);

        // Ages and TTLs follow the container's clock, not the system's: 59 s is a hit of that age, 60 s has expired.
        var vector = new float[4];
        Assert.Equal(EmbeddingSource.Fresh, (await host.Cache.GetAsync("ctr", 1, vector)).Source);
        host.Clock.Advance(TimeSpan.FromSeconds(59));
        var hit = await host.Cache.GetAsync("ctr", 1, vector);
        Assert.Equal((EmbeddingSource.Direct, TimeSpan.FromSeconds(59)), (hit.Source, hit.Age));
        host.Clock.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(EmbeddingSource.Fresh, (await host.Cache.GetAsync("ctr", 1, vector)).Source);
    }

    [Fact]
    public async Task Host_start_warms_the_cache_up_before_it_reports_started()
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["ERCache:Models:ctr:Dimensions"] = "4",
            ["ERCache:Models:ctr:Direct:Ttl"] = "00:01:00",
            ["ERCache:Models:ctr:Failover:Ttl"] = "01:00:00",
        });
        builder.Services.AddFakeLogging();
        builder.Services.AddERCache().AddModel<OnesTower>("ctr");
        using var host = builder.Build();
        var logs = host.Services.GetFakeLogCollector();
        Assert.DoesNotContain(logs.GetSnapshot(), r => r.Message.StartsWith("ERCache warmed up", StringComparison.Ordinal));

        await host.StartAsync();

        Assert.Contains(logs.GetSnapshot(), r => r.Message == "ERCache warmed up for 1 model(s).");
        await host.StopAsync();
    }

    [Fact]
    public async Task ValidateOnStart_fails_host_start_naming_every_bad_field()
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["ERCache:Models:ctr:Dimensions"] = "0",
            ["ERCache:Models:ctr:Direct:Ttl"] = "00:01:00",
            ["ERCache:Models:ctr:Failover:Ttl"] = "00:00:10",
            ["ERCache:Models:ctr:Failover:Eviction"] = "Clock",
        });
        builder.Services.AddERCache().AddModel<OnesTower>("ctr");
        using var host = builder.Build();

        var ex = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());

        Assert.Equal(
            [
                "ERCache:Models:ctr:Dimensions must be between 1 and 16384 (got 0).",
                "ERCache:Models:ctr:Failover:Eviction 'Clock' is not a known eviction strategy; allowed: Lru, Fifo, MemoryCache, Sieve.",
                "ERCache:Models:ctr:Failover:Ttl (00:00:10) must not be shorter than ERCache:Models:ctr:Direct:Ttl (00:01:00).",
            ],
            ex.Failures);
    }

    [Fact]
    public void A_custom_section_path_is_bound_and_named_in_messages()
    {
        var services = new ServiceCollection();
        services.AddSingleton<IConfiguration>(new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Ranking:Cache:Models:ctr:Dimensions"] = "4",
            ["Ranking:Cache:Models:ctr:Direct:Ttl"] = "00:00:00",
            ["Ranking:Cache:Models:ctr:Failover:Ttl"] = "00:10:00",
        }).Build());
        services.AddERCache("Ranking:Cache").AddModel<OnesTower>("ctr");
        using var sp = services.BuildServiceProvider();

        var ex = Assert.Throws<OptionsValidationException>(() => sp.GetRequiredService<EmbeddingCache>());

        Assert.Equal(["Ranking:Cache:Models:ctr:Direct:Ttl must be positive (got 00:00:00)."], ex.Failures);
    }

    [Fact]
    public async Task AddERCache_can_configure_in_code()
    {
        var services = new ServiceCollection();
        services.AddERCache(o =>
        {
            o.Models["ctr"] = CacheFixture.DefaultModel(4);
            o.Models["ctr"].Inference.Timeout = TimeSpan.FromSeconds(30); // real clock here: a generous deadline
        }).AddModel<OnesTower>("ctr");
        using var sp = services.BuildServiceProvider();

        var result = await sp.GetRequiredService<IEmbeddingCache>().GetAsync("ctr", 5, new float[4]);

        Assert.Equal(EmbeddingSource.Fresh, result.Source);
        Assert.Equal(EvictionStrategy.Lru, sp.GetRequiredService<EmbeddingCache>().GetPolicy("ctr").Direct.Eviction);
    }

    [Fact]
    public void A_model_without_inference_fails_when_the_cache_is_built()
    {
        var services = new ServiceCollection();
        services.AddERCache(o => o.Models["ctr"] = CacheFixture.DefaultModel(4));
        using var sp = services.BuildServiceProvider();

        var ex = Assert.Throws<InvalidOperationException>(() => sp.GetRequiredService<EmbeddingCache>());

        Assert.Contains("'ctr'", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task In_a_host_a_model_without_inference_fails_start_up_naming_it()
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddERCache(o =>
        {
            o.Models["ctr"] = CacheFixture.DefaultModel(4);
            o.Models["cvr"] = CacheFixture.DefaultModel(4);
        }).AddModel("ctr", new OnesTower());
        using var host = builder.Build();

        var ex = await Assert.ThrowsAsync<InvalidOperationException>(() => host.StartAsync());

        Assert.StartsWith("No inference is registered for model(s) 'cvr'", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task In_a_host_an_AddModel_that_matches_no_configured_model_fails_start_up_naming_it()
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddERCache(o => o.Models["ctr"] = CacheFixture.DefaultModel(4))
            .AddModel("ctr", new OnesTower())
            .AddModel("ctr_v2", new OnesTower());
        using var host = builder.Build();

        var ex = await Assert.ThrowsAsync<InvalidOperationException>(() => host.StartAsync());

        Assert.Equal("AddModel names model(s) that are not configured: 'ctr_v2'. Configured models: ctr.", ex.Message);
    }

    [Fact]
    public async Task In_a_host_a_complete_registration_starts_with_the_cache_built()
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddERCache(o =>
        {
            o.Models["ctr"] = CacheFixture.DefaultModel(4);
            o.Models["ctr"].Inference.Timeout = TimeSpan.FromSeconds(30); // real clock here: a generous deadline
        }).AddModel("CTR", new OnesTower());
        using var host = builder.Build();

        await host.StartAsync();
        var result = await host.Services.GetRequiredService<IEmbeddingCache>().GetAsync("ctr", 1, new float[4]);
        await host.StopAsync();

        Assert.Equal(EmbeddingSource.Fresh, result.Source);
    }

    private sealed class OnesTower : IEmbeddingInference
    {
        public ValueTask InferAsync(InferenceBatch batch, CancellationToken cancellationToken)
        {
            batch.Destination.Span.Fill(1f);
            return ValueTask.CompletedTask;
        }
    }
}
