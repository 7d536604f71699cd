using ERCache.Models;
using ERCache.Inference;
using Microsoft.Extensions.Configuration;
using ERCache.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace ERCache.Tests;

public sealed class ConfigurationTests
{
    internal static IReadOnlyList<string> Errors(Action<ModelOptions> configure)
    {
        var model = CacheFixture.DefaultModel(4);
        configure(model);
        var options = new ERCacheOptions { Models = { ["ctr"] = model } };
        return new ERCacheOptionsValidator().Collect(options);
    }

    /// <summary>The messages for a valid model <c>ctr</c> bound from configuration with <paramref name="settings"/>
    /// added (keys relative to <c>ERCache:Models:ctr</c>).</summary>
    internal static IReadOnlyList<string> ConfigErrors(params (string Key, string? Value)[] settings)
    {
        var keys = new Dictionary<string, string?>
        {
            ["ERCache:Models:ctr:Dimensions"] = "4",
            ["ERCache:Models:ctr:Direct:Ttl"] = "00:01:00",
            ["ERCache:Models:ctr:Failover:Ttl"] = "01:00:00",
        };
        foreach (var (key, value) in settings)
        {
            keys[$"ERCache:Models:ctr:{key}"] = value;
        }

        try
        {
            ERCacheOptions.FromConfiguration(Section(keys));
            return [];
        }
        catch (OptionsValidationException ex)
        {
            return ex.Failures.ToList();
        }
    }

    /// <summary>The <c>ERCache</c> section of an in-memory configuration holding <paramref name="keys"/>.</summary>
    internal static IConfigurationSection Section(Dictionary<string, string?> keys) =>
        new ConfigurationBuilder().AddInMemoryCollection(keys).Build().GetSection("ERCache");

    [Fact]
    public void Freshness_settings_are_checked_by_path()
    {
        Assert.Empty(ConfigErrors(("Freshness:SampleRate", "0.01"), ("Freshness:RefreshAhead", "0.8")));
        Assert.Equal(
            ["ERCache:Models:ctr:Freshness:SampleRate must be between 0 and 1 (got 1.5)."],
            ConfigErrors(("Freshness:SampleRate", "1.5")));
        Assert.Equal(
            ["ERCache:Models:ctr:Freshness:RefreshAhead must be a fraction of Direct:Ttl between 0 and 1, both excluded (got 1)."],
            ConfigErrors(("Freshness:RefreshAhead", "1")));
        Assert.Equal(
            ["ERCache:Models:ctr:Freshness:SampleRate samples direct hits, but the model's direct tier is disabled (got 0.5); set it to 0 or enable Direct.",
             "ERCache:Models:ctr:Freshness:RefreshAhead refreshes direct-tier entries, but the model's direct tier is disabled (got 0.5); remove it or enable Direct."],
            ConfigErrors(("Direct:Enabled", "false"), ("Freshness:SampleRate", "0.5"), ("Freshness:RefreshAhead", "0.5")));
        Assert.Single(ConfigErrors(("Freshness:SampleRte", "0.5"))); // a misspelt key is reported, not ignored
        Assert.Equal(["ERCache:Models:ctr:Freshness:SampleRate must be between 0 and 1 (got NaN)."], Errors(m => m.Freshness.SampleRate = double.NaN));
    }

    [Fact]
    public void The_default_fixture_is_valid() => Assert.Empty(Errors(_ => { }));

    [Theory]
    [InlineData(0)]
    [InlineData(-3)]
    [InlineData(16385)]
    public void Dimensions_outside_1_to_16384_are_rejected(int dimensions) =>
        Assert.Equal([$"ERCache:Models:ctr:Dimensions must be between 1 and 16384 (got {dimensions})."], Errors(m => m.Dimensions = dimensions));

    [Fact]
    public void Dimensions_at_the_limits_are_accepted()
    {
        Assert.Empty(Errors(m => m.Dimensions = 1));
        Assert.Empty(Errors(m => m.Dimensions = 16384));
    }

    [Fact]
    public void A_zero_direct_ttl_is_rejected() =>
        Assert.Equal(["ERCache:Models:ctr:Direct:Ttl must be positive (got 00:00:00)."], Errors(m => m.Direct.Ttl = TimeSpan.Zero));

    [Fact]
    public void A_negative_failover_ttl_is_rejected() =>
        Assert.Equal(["ERCache:Models:ctr:Failover:Ttl must be positive (got -00:00:01)."], Errors(m => m.Failover.Ttl = TimeSpan.FromSeconds(-1)));

    [Fact]
    public void A_failover_ttl_shorter_than_the_direct_ttl_is_rejected() =>
        Assert.Equal(
            ["ERCache:Models:ctr:Failover:Ttl (00:00:30) must not be shorter than ERCache:Models:ctr:Direct:Ttl (00:01:00)."],
            Errors(m => m.Failover.Ttl = TimeSpan.FromSeconds(30)));

    [Fact]
    public void A_short_failover_ttl_is_fine_when_the_direct_tier_is_disabled() =>
        Assert.Empty(Errors(m => { m.Failover.Ttl = TimeSpan.FromSeconds(30); m.Direct.Enabled = false; }));

    [Fact]
    public void A_disabled_tier_is_not_validated() =>
        Assert.Empty(Errors(m => { m.Failover.Enabled = false; m.Failover.Ttl = TimeSpan.Zero; m.Failover.Capacity = 0; m.Failover.Eviction = (EvictionStrategy)42; }));

    [Fact]
    public void A_name_that_does_not_bind_is_reported_even_in_a_disabled_tier() =>
        Assert.Equal(
            ["ERCache:Models:ctr:Failover:Eviction 'Nope' is not a known eviction strategy; allowed: Lru, Fifo, MemoryCache, Sieve."],
            ConfigErrors(("Failover:Enabled", "false"), ("Failover:Eviction", "Nope")));

    [Fact]
    public void A_non_positive_capacity_is_rejected() =>
        Assert.Equal(["ERCache:Models:ctr:Direct:Capacity must be positive (got 0)."], Errors(m => m.Direct.Capacity = 0));

    [Fact]
    public void An_unknown_eviction_lists_the_allowed_names() =>
        Assert.Equal(
            ["ERCache:Models:ctr:Failover:Eviction 'Random' is not a known eviction strategy; allowed: Lru, Fifo, MemoryCache, Sieve."],
            ConfigErrors(("Failover:Eviction", "Random")));

    [Fact]
    public void An_undefined_eviction_set_in_code_lists_the_allowed_names() =>
        Assert.Equal(
            ["ERCache:Models:ctr:Failover:Eviction '42' is not a known eviction strategy; allowed: Lru, Fifo, MemoryCache, Sieve."],
            Errors(m => m.Failover.Eviction = (EvictionStrategy)42));

    [Fact]
    public void An_unknown_format_lists_the_allowed_names() =>
        Assert.Equal(
            ["ERCache:Models:ctr:Direct:Format 'Int4' is not a known storage format; allowed: Float32, Float16, Int8."],
            ConfigErrors(("Direct:Format", "Int4")));

    [Fact]
    public void Names_are_case_insensitive() => Assert.Empty(ConfigErrors(("Direct:Eviction", "lru"), ("Direct:Format", "FLOAT32")));

    [Fact]
    public void Numeric_enum_values_are_not_names() =>
        Assert.Single(ConfigErrors(("Direct:Eviction", "0")));

    [Fact]
    public void Inference_settings_are_checked() =>
        Assert.Equal(
            [
                "ERCache:Models:ctr:Inference:Timeout must be positive and at most 49.17:02:47.2940000, the longest .NET timer (got 00:00:00).",
                "ERCache:Models:ctr:Inference:MaxBatchSize must be between 1 and 65536 (got 0).",
                "ERCache:Models:ctr:Inference:MaxConcurrency must be positive (got -1).",
            ],
            Errors(m => { m.Inference.Timeout = TimeSpan.Zero; m.Inference.MaxBatchSize = 0; m.Inference.MaxConcurrency = -1; }));

    [Fact]
    public void Sla_settings_are_checked() =>
        Assert.Equal(
            [
                "ERCache:Models:ctr:Inference:HardTimeout (00:00:00.0100000) must not be shorter than ERCache:Models:ctr:Inference:Timeout (00:00:00.0500000).",
                "ERCache:Models:ctr:Inference:BatchWindow must be zero or more and shorter than Inference:Timeout (got 00:00:00.0500000).",
                "ERCache:Models:ctr:Inference:MaxQueue must be positive (got 0).",
                "ERCache:Models:ctr:Inference:CircuitBreaker:FailureRatio must be in (0, 1] (got 1.5).",
                "ERCache:Models:ctr:Inference:CircuitBreaker:MinimumThroughput must be at least 2 (got 1).",
                "ERCache:Models:ctr:Inference:CircuitBreaker:SamplingDuration must be at least 00:00:00.500 (got 00:00:00.1000000).",
                "ERCache:Models:ctr:Inference:CircuitBreaker:BreakDuration must be at least 00:00:00.500 (got 00:00:00).",
            ],
            Errors(m =>
            {
                m.Inference.HardTimeout = TimeSpan.FromMilliseconds(10);
                m.Inference.BatchWindow = TimeSpan.FromMilliseconds(50);
                m.Inference.MaxQueue = 0;
                m.Inference.CircuitBreaker = new CircuitBreakerOptions
                {
                    FailureRatio = 1.5, MinimumThroughput = 1, SamplingDuration = TimeSpan.FromMilliseconds(100), BreakDuration = TimeSpan.Zero,
                };
            }));

    [Fact]
    public void A_disabled_breaker_is_not_validated() =>
        Assert.Empty(Errors(m => m.Inference.CircuitBreaker = new CircuitBreakerOptions { Enabled = false, FailureRatio = 7 }));

    [Fact]
    public void A_default_vector_must_match_the_dimensions_and_be_finite() =>
        Assert.Equal(
            [
                "ERCache:Models:ctr:DefaultVector must have Dimensions (4) values (got 3).",
                "ERCache:Models:ctr:DefaultVector:1 must be finite (got NaN).",
            ],
            Errors(m => m.DefaultVector = [1, float.NaN, 2]));

    [Fact]
    public void An_empty_version_is_rejected() =>
        Assert.Equal(["ERCache:Models:ctr:Version must not be empty."], Errors(m => m.Version = " "));

    [Fact]
    public void No_models_at_all_is_rejected() =>
        Assert.Equal(["ERCache:Models must configure at least one model."], new ERCacheOptionsValidator().Collect(new ERCacheOptions()));

    [Fact]
    public void Every_bad_field_is_reported_in_one_message()
    {
        var keys = new Dictionary<string, string?>
        {
            ["ERCache:Models:a:Dimensions"] = "0",
            ["ERCache:Models:a:Direct:Ttl"] = "00:00:00",
            ["ERCache:Models:a:Failover:Ttl"] = "01:00:00",
            ["ERCache:Models:b:Dimensions"] = "4",
            ["ERCache:Models:b:Direct:Ttl"] = "00:01:00",
            ["ERCache:Models:b:Failover:Ttl"] = "01:00:00",
            ["ERCache:Models:b:Failover:Format"] = "Float64",
        };
        var ex = Assert.Throws<OptionsValidationException>(() => ERCacheOptions.FromConfiguration(Section(keys)));

        Assert.Equal(
            "ERCache:Models:a:Dimensions must be between 1 and 16384 (got 0).; " +
            "ERCache:Models:a:Direct:Ttl must be positive (got 00:00:00).; " +
            "ERCache:Models:b:Failover:Format 'Float64' is not a known storage format; allowed: Float32, Float16, Int8.",
            ex.Message);
    }

    [Fact]
    public void Options_set_in_code_are_validated_by_Create()
    {
        var options = new ERCacheOptions { Models = { ["a"] = new ModelOptions { Dimensions = 0, Direct = { Ttl = TimeSpan.FromMinutes(1) }, Failover = { Ttl = TimeSpan.FromHours(1) } } } };

        var ex = Assert.Throws<OptionsValidationException>(() => EmbeddingCache.Create(options, new Dictionary<string, Inference.IEmbeddingInference>()));

        Assert.Equal("ERCache:Models:a:Dimensions must be between 1 and 16384 (got 0).", ex.Message);
    }

    [Fact]
    public void Binding_from_json_reads_every_field_and_keeps_documented_defaults()
    {
        using var host = new ConfiguredHost("""
        {
          "ERCache": {
            "Models": {
              "ctr_user_tower": {
                "Dimensions": 256,
                "Version": "2026-11-01",
                "Inference": { "Timeout": "00:00:00.050", "MaxBatchSize": 64, "MaxConcurrency": 8 },
                "Direct":   { "Enabled": true, "Ttl": "00:01:00", "Capacity": 1000000, "Eviction": "Lru",  "Format": "Float32" },
                "Failover": { "Enabled": true, "Ttl": "01:00:00", "Capacity": 4000000, "Eviction": "Fifo", "Format": "Float32" }
              },
              "minimal": { "Dimensions": 8, "Direct": { "Ttl": "00:00:30" }, "Failover": { "Ttl": "00:10:00" } }
            }
          }
        }
        """);

        var full = host.Cache.GetPolicy("ctr_user_tower");
        var minimal = host.Cache.GetPolicy("minimal");

        Assert.Equal(256, full.Dimensions);
        Assert.Equal("2026-11-01", full.Version);
        Assert.Equal(TimeSpan.FromMilliseconds(50), full.InferenceTimeout);
        Assert.Equal(64, full.MaxBatchSize);
        Assert.Equal(8, full.MaxConcurrency);
        Assert.Equal((TimeSpan.FromMinutes(1), 1_000_000, EvictionStrategy.Lru, StorageFormat.Float32), (full.Direct.Ttl, full.Direct.Capacity, full.Direct.Eviction, full.Direct.Format));
        Assert.Equal((TimeSpan.FromHours(1), 4_000_000, EvictionStrategy.Fifo), (full.Failover.Ttl, full.Failover.Capacity, full.Failover.Eviction));

        Assert.Equal("1", minimal.Version);
        Assert.Equal(InferenceOptions.DefaultTimeout, minimal.InferenceTimeout);
        Assert.Equal(64, minimal.MaxBatchSize);
        Assert.True(minimal.Direct.Enabled);
        Assert.Equal(TierOptions.DefaultCapacity, minimal.Direct.Capacity);
        Assert.Equal(EvictionStrategy.Lru, minimal.Direct.Eviction);
        Assert.Equal(EvictionStrategy.Fifo, minimal.Failover.Eviction);
        Assert.Equal(StorageFormat.Float32, minimal.Failover.Format);
    }

    [Fact]
    public void Invalid_configuration_is_reported_with_every_bad_field_when_options_are_read()
    {
        using var host = new ConfiguredHost(ConfiguredHost.Json(ConfiguredHost.Model("ctr", dimensions: 0, directTtl: "00:00:00")));

        var ex = Assert.Throws<OptionsValidationException>(() => host.Services.GetRequiredService<IOptions<ERCacheOptions>>().Value);

        Assert.Contains("ERCache:Models:ctr:Dimensions must be between 1 and 16384 (got 0).", ex.Failures);
        Assert.Contains("ERCache:Models:ctr:Direct:Ttl must be positive (got 00:00:00).", ex.Failures);
    }

    [Fact]
    public async Task Rule7_reload_with_a_new_version_hides_every_older_entry()
    {
        using var host = new ConfiguredHost(ConfiguredHost.Json(ConfiguredHost.Model("ctr", version: "v1")));
        var cache = host.Cache;
        await cache.GetAsync("ctr", 7, new float[4]);

        host.Reload(ConfiguredHost.Json(ConfiguredHost.Model("ctr", version: "v2")));
        var fresh = await cache.GetAsync("ctr", 7, new float[4]);
        host.Towers["ctr"].Whole = (_, _) => throw new InvalidOperationException("down");
        var other = await cache.GetAsync("ctr", 8, new float[4]);

        Assert.Equal("v2", cache.GetPolicy("ctr").Version);
        Assert.Equal(EmbeddingSource.Fresh, fresh.Source);
        Assert.Equal("v2", fresh.ModelVersion);
        Assert.Equal(3, host.Towers["ctr"].CallCount);
        Assert.Equal(EmbeddingSource.Fallback, other.Source);
    }

    [Fact]
    public async Task Rule7_version_change_hides_failover_entries_too()
    {
        using var host = new ConfiguredHost(ConfiguredHost.Json(ConfiguredHost.Model("ctr", version: "v1")));
        await host.Cache.GetAsync("ctr", 7, new float[4]);
        host.Reload(ConfiguredHost.Json(ConfiguredHost.Model("ctr", version: "v2")));
        host.Towers["ctr"].Whole = (_, _) => throw new InvalidOperationException("down");

        var result = await host.Cache.GetAsync("ctr", 7, new float[4]);

        Assert.Equal(EmbeddingSource.Fallback, result.Source);
        Assert.Equal(0, host.Cache.GetEntryCount("ctr", TierKind.Failover));
    }

    [Fact]
    public async Task Reload_of_dimensions_drops_cached_vectors_and_uses_the_new_length()
    {
        using var host = new ConfiguredHost(ConfiguredHost.Json(ConfiguredHost.Model("ctr", dimensions: 4)));
        await host.Cache.GetAsync("ctr", 7, new float[4]);

        host.Reload(ConfiguredHost.Json(ConfiguredHost.Model("ctr", dimensions: 6)));
        var result = await host.Cache.GetAsync("ctr", 7, new float[6]);

        Assert.Equal(EmbeddingSource.Fresh, result.Source);
        await Assert.ThrowsAsync<ArgumentException>(() => host.Cache.GetAsync("ctr", 7, new float[4]).AsTask());
    }

    [Fact]
    public async Task Reload_of_a_ttl_keeps_cached_vectors_and_applies_the_new_ttl()
    {
        using var host = new ConfiguredHost(ConfiguredHost.Json(ConfiguredHost.Model("ctr", directTtl: "00:01:00")));
        await host.Cache.GetAsync("ctr", 7, new float[4]);
        host.Clock.Advance(TimeSpan.FromSeconds(90));

        host.Reload(ConfiguredHost.Json(ConfiguredHost.Model("ctr", directTtl: "00:02:00")));
        var result = await host.Cache.GetAsync("ctr", 7, new float[4]);

        Assert.Equal(EmbeddingSource.Direct, result.Source);
        Assert.Equal(TimeSpan.FromSeconds(90), result.Age);
        Assert.Equal(TimeSpan.FromMinutes(2), host.Cache.GetPolicy("ctr").Direct.Ttl);
    }

    [Fact]
    public async Task Reload_applies_per_model_and_leaves_other_models_untouched()
    {
        using var host = new ConfiguredHost(ConfiguredHost.Json(ConfiguredHost.Model("a") + "," + ConfiguredHost.Model("b")));
        await host.Cache.GetAsync("a", 7, new float[4]);
        await host.Cache.GetAsync("b", 7, new float[4]);

        host.Reload(ConfiguredHost.Json(ConfiguredHost.Model("a", version: "v2") + "," + ConfiguredHost.Model("b")));

        Assert.Equal(EmbeddingSource.Fresh, (await host.Cache.GetAsync("a", 7, new float[4])).Source);
        Assert.Equal(EmbeddingSource.Direct, (await host.Cache.GetAsync("b", 7, new float[4])).Source);
    }

    [Fact]
    public async Task An_invalid_reload_is_rejected_whole_and_the_previous_policies_stay()
    {
        using var host = new ConfiguredHost(ConfiguredHost.Json(ConfiguredHost.Model("ctr", version: "v1")));
        await host.Cache.GetAsync("ctr", 7, new float[4]);

        host.Reload(ConfiguredHost.Json(ConfiguredHost.Model("ctr", version: "v2", directTtl: "-00:00:01"))); // nothing is thrown at the reloader

        Assert.Contains(host.Logs.GetSnapshot(), r => r.Message.Contains("ERCache:Models:ctr:Direct:Ttl must be positive", StringComparison.Ordinal));
        Assert.Equal("v1", host.Cache.GetPolicy("ctr").Version);
        Assert.Equal(EmbeddingSource.Direct, (await host.Cache.GetAsync("ctr", 7, new float[4])).Source);
    }

    [Fact]
    public void A_configured_model_without_inference_fails_at_start()
    {
        var options = new ERCacheOptions { Models = { ["ctr"] = CacheFixture.DefaultModel(4), ["cvr"] = CacheFixture.DefaultModel(4) } };

        var ex = Assert.Throws<InvalidOperationException>(() => EmbeddingCache.Create(options, new Dictionary<string, Inference.IEmbeddingInference> { ["ctr"] = new TestTower() }));

        Assert.StartsWith("No inference is registered for model(s) 'cvr'", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_reload_after_the_options_were_bound_and_before_the_cache_was_built_is_applied()
    {
        // What a host does: it validates the options at start (binding them), then builds the cache. A file changed in
        // between was never applied: the cache read the options bound before it and subscribed to reloads after.
        using var host = new ConfiguredHost(ConfiguredHost.Json(ConfiguredHost.Model("ctr", version: "v1")));
        Assert.Equal("v1", host.Services.GetRequiredService<IOptionsMonitor<ERCacheOptions>>().CurrentValue.Models["ctr"].Version);

        host.Reload(ConfiguredHost.Json(ConfiguredHost.Model("ctr", version: "v2")));
        var cache = host.Cache;
        var built = cache.GetPolicy("ctr").Version;
        host.Reload(ConfiguredHost.Json(ConfiguredHost.Model("ctr", version: "v3")));

        Assert.Equal("v2", built);
        Assert.Equal("v3", cache.GetPolicy("ctr").Version); // later reloads are followed as before
        Assert.DoesNotContain(host.Logs.GetSnapshot(), r => r.Level >= Microsoft.Extensions.Logging.LogLevel.Warning);
    }

    [Fact]
    public void An_options_monitor_change_between_the_cache_reading_its_options_and_subscribing_is_applied()
    {
        var first = new ERCacheOptions { Models = { ["ctr"] = CacheFixture.DefaultModel(4) } };
        var changed = new ERCacheOptions { Models = { ["ctr"] = CacheFixture.DefaultModel(4), ["new"] = CacheFixture.DefaultModel(4) } };
        var monitor = new ChangedAfterFirstRead(first, changed);
        TestThread.LeaveSynchronizationContext(); // the cache reacts inside each step (see TestThread)
        using var cache = new EmbeddingCache(monitor, _ => new TestTower(), new EmbeddingCacheServices { TimeProvider = new Microsoft.Extensions.Time.Testing.FakeTimeProvider() });

        Assert.Equal(["ctr", "new"], cache.Models.Order(StringComparer.Ordinal));
    }

    /// <summary>A monitor whose value changes right after it is first read, before anyone could subscribe: the change
    /// raises no listener, as when it lands between the cache's read and its subscription.</summary>
    private sealed class ChangedAfterFirstRead(ERCacheOptions first, ERCacheOptions changed) : IOptionsMonitor<ERCacheOptions>
    {
        private int _reads;

        public ERCacheOptions CurrentValue => Interlocked.Increment(ref _reads) == 1 ? first : changed;

        public ERCacheOptions Get(string? name) => CurrentValue;

        public IDisposable? OnChange(Action<ERCacheOptions, string?> listener) => null;
    }
}

public sealed class TierSizeConfigurationTests
{
    private static IReadOnlyList<string> Errors(Action<ModelOptions> change) => ConfigurationTests.Errors(change);

    [Fact]
    public void A_capacity_beyond_the_index_limit_is_rejected() =>
        Assert.Equal(["ERCache:Models:ctr:Direct:Capacity must be at most 268435455 (got 268435456)."], Errors(m => m.Direct.Capacity = 1 << 28));

    [Fact]
    public void MaxBytes_too_small_for_one_entry_names_the_least_that_works()
    {
        // 4 dimensions (the fixture), Float32, Lru: 8192 fixed + (20 + 16 + 7 + 20) per entry = 8255.
        Assert.Equal(
            ["ERCache:Models:ctr:Direct:MaxBytes must be at least 8255 to hold one Float32 entry of 4 dimensions with Lru eviction (got 8254)."],
            Errors(m => m.Direct.MaxBytes = 8254));
        Assert.Empty(Errors(m => m.Direct.MaxBytes = 8255));
    }

    [Fact]
    public void MaxBytes_with_memory_cache_eviction_is_rejected() =>
        Assert.Equal(
            ["ERCache:Models:ctr:Failover:MaxBytes is not supported with Eviction MemoryCache (got 1000000); use Capacity, or a slab strategy (Lru, Fifo, Sieve)."],
            Errors(m => { m.Failover.Eviction = EvictionStrategy.MemoryCache; m.Failover.MaxBytes = 1_000_000; }));

    [Fact]
    public void Sieve_is_accepted_by_name_in_any_case() =>
        Assert.Empty(ConfigurationTests.ConfigErrors(("Direct:Eviction", "sieve"), ("Failover:Eviction", "SIEVE")));

    [Fact]
    public void Inference_timeouts_beyond_the_longest_timer_are_rejected_by_path()
    {
        var tooLong = TimeSpan.FromDays(50);
        Assert.Equal(
            ["ERCache:Models:ctr:Inference:Timeout must be positive and at most 49.17:02:47.2940000, the longest .NET timer (got 50.00:00:00)."],
            Errors(m => m.Inference.Timeout = tooLong));
        Assert.Equal(
            ["ERCache:Models:ctr:Inference:Timeout must be positive and at most 49.17:02:47.2940000, the longest .NET timer (got 10675199.02:48:05.4775807)."],
            Errors(m => m.Inference.Timeout = TimeSpan.MaxValue));
        Assert.Equal(
            ["ERCache:Models:ctr:Inference:HardTimeout must be at most 49.17:02:47.2940000, the longest .NET timer (got 50.00:00:00)."],
            Errors(m => m.Inference.HardTimeout = tooLong));
        Assert.Empty(Errors(m => { m.Inference.Timeout = ERCacheLimits.MaxInferenceTimeout; m.Inference.HardTimeout = ERCacheLimits.MaxInferenceTimeout; }));
    }

    [Fact]
    public void Building_a_cache_with_TimeSpan_MaxValue_as_timeout_names_the_field_instead_of_overflowing()
    {
        var options = new ERCacheOptions { Models = { ["ctr"] = CacheFixture.DefaultModel(4) } };
        options.Models["ctr"].Inference.Timeout = TimeSpan.MaxValue;

        var ex = Assert.Throws<OptionsValidationException>(() => EmbeddingCache.Create(options, new Dictionary<string, IEmbeddingInference> { ["ctr"] = new TestTower() }));

        Assert.Contains("ERCache:Models:ctr:Inference:Timeout", ex.Message);
    }

    [Theory]
    [InlineData(40.0, null)]   // ten times 40 days is past the longest timer: the default hard limit stops there
    [InlineData(49.0, 49.5)]
    public async Task Timeouts_near_the_longest_timer_serve_misses(double timeoutDays, double? hardDays)
    {
        using var f = new CacheFixture(m =>
        {
            m.Inference.Timeout = TimeSpan.FromDays(timeoutDays);
            m.Inference.HardTimeout = hardDays is { } h ? TimeSpan.FromDays(h) : null;
        });

        var (result, vector) = await f.GetAsync(7).WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Equal((EmbeddingSource.Fresh, InferenceFailureCause.None), (result.Source, result.FailureCause));
        Assert.True(TestTower.BelongsTo(vector, 7));
        Assert.True(f.Cache.GetPolicy(CacheFixture.Model).HardTimeout <= ERCacheLimits.MaxInferenceTimeout);
    }

    [Fact]
    public async Task The_longest_ttls_serve_hits_without_overflowing()
    {
        using var f = new CacheFixture(m => { m.Direct.Ttl = TimeSpan.MaxValue; m.Failover.Ttl = TimeSpan.MaxValue; });
        await f.GetAsync(7);
        f.Clock.Advance(TimeSpan.FromDays(3650));

        var (result, vector) = await f.GetAsync(7);

        Assert.Equal(EmbeddingSource.Direct, result.Source);
        Assert.True(TestTower.BelongsTo(vector, 7));
    }

    [Fact]
    public async Task A_reload_that_rebuilds_one_model_and_rejects_another_changes_neither()
    {
        using var host = new ConfiguredHost(ConfiguredHost.Json(ConfiguredHost.Model("a", capacity: 100) + "," + ConfiguredHost.Model("b")));
        await host.Cache.GetAsync("a", 7, new float[4]);

        // a's capacity change would rebuild its tiers empty; b's negative TTL makes the whole reload invalid.
        host.Reload(ConfiguredHost.Json(ConfiguredHost.Model("a", capacity: 200) + "," + ConfiguredHost.Model("b", directTtl: "-00:00:01")));
        var kept = await host.Cache.GetAsync("a", 7, new float[4]);
        await host.Cache.GetAsync("a", 8, new float[4]);
        var cachedAfter = await host.Cache.GetAsync("a", 8, new float[4]);

        Assert.Equal(EmbeddingSource.Direct, kept.Source);           // the running tier, not an empty rebuilt one
        Assert.Equal(EmbeddingSource.Direct, cachedAfter.Source);    // and new results are cached where requests read
        Assert.Equal(100, host.Cache.GetPolicy("a").Direct.Capacity);
        Assert.Contains(host.Logs.GetSnapshot(), r => r.Message.Contains("ERCache:Models:b:Direct:Ttl must be positive", StringComparison.Ordinal));
    }

    [Fact]
    public void An_options_monitor_reload_that_cannot_be_applied_is_logged_not_thrown()
    {
        var tower = new TestTower();
        using var host = new ReloadableCache(new ERCacheOptions { Models = { ["ctr"] = CacheFixture.DefaultModel(4) } }, name => name == "ctr" ? tower : null);

        host.Reload(new ERCacheOptions { Models = { ["ctr"] = CacheFixture.DefaultModel(4), ["new"] = CacheFixture.DefaultModel(4) } });

        Assert.Equal(["ctr"], host.Cache.Models);
        Assert.Contains(host.Logs.GetSnapshot(), r => r.Message.Contains("No inference is registered for model(s) 'new'", StringComparison.Ordinal));
    }

    [Fact]
    public void A_reloaded_setting_that_is_read_once_is_logged_by_its_path_not_ignored_silently()
    {
        using var host = new ReloadableCache(new ERCacheOptions { Models = { ["ctr"] = CacheFixture.DefaultModel(4) } }, store: new ERCache.Testing.InMemoryRegionalStore());

        var reloaded = new ERCacheOptions { Models = { ["ctr"] = CacheFixture.DefaultModel(4) }, Regional = new RegionalOptions { Invalidation = false } };
        reloaded.Models["ctr"].Direct.Ttl = TimeSpan.FromMinutes(7);
        host.Reload(reloaded);
        host.Reload(reloaded); // the same change again: logged once

        var ignored = host.Logs.GetSnapshot().Where(r => r.Id.Id == 38).ToArray();
        Assert.Equal("ERCache:Regional:Invalidation", Assert.Single(ignored).StructuredState!.Single(p => p.Key == "Setting").Value);
        Assert.Contains("(true -> false)", ignored[0].Message, StringComparison.Ordinal);
        Assert.Equal(TimeSpan.FromMinutes(7), host.Cache.GetPolicy("ctr").Direct.Ttl); // the models' part of the reload applied
    }

    [Fact]
    public void A_reloaded_store_setting_is_logged_too_and_a_connection_string_never_appears_in_the_log()
    {
        static ERCacheOptions With(RegionalOptions regional) => new() { Models = { ["ctr"] = CacheFixture.DefaultModel(4) }, Regional = regional };
        using var host = new ReloadableCache(
            With(new RegionalOptions { ConnectionString = "redis-a:6379,password=first-secret" }), store: new ERCache.Testing.InMemoryRegionalStore());

        host.Reload(With(new RegionalOptions
        {
            ConnectionString = "redis-b:6379,password=second-secret", KeyPrefix = "ercache:other", Invalidation = false,
        }));

        var ignored = host.Logs.GetSnapshot().Where(r => r.Id.Id == 38).ToArray();
        Assert.Equal(
            ["ERCache:Regional:ConnectionString", "ERCache:Regional:Invalidation", "ERCache:Regional:KeyPrefix"],
            ignored.Select(r => (string)r.StructuredState!.Single(p => p.Key == "Setting").Value!).Order(StringComparer.Ordinal));
        Assert.DoesNotContain(host.Logs.GetSnapshot(), r => r.Message.Contains("secret", StringComparison.Ordinal));
        Assert.Contains("(default) -> ercache:other", ignored.Single(r => r.Message.Contains("KeyPrefix", StringComparison.Ordinal)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Freshness_on_a_model_with_one_slot_is_logged_once_since_it_cannot_run()
    {
        static ERCacheOptions With(int maxConcurrency, double sampleRate)
        {
            var model = CacheFixture.DefaultModel(4);
            model.Inference.MaxConcurrency = maxConcurrency;
            model.Freshness = new FreshnessOptions { SampleRate = sampleRate };
            return new ERCacheOptions { Models = { ["ctr"] = model } };
        }

        using var host = new ReloadableCache(With(maxConcurrency: 1, sampleRate: 0.1));
        int Warnings() => host.Logged(39).Length;

        Assert.Equal(1, Warnings());
        Assert.Contains("'ctr'", host.Logged(39)[0], StringComparison.Ordinal);
        host.Reload(With(maxConcurrency: 1, sampleRate: 0.1)); // unchanged: not again
        Assert.Equal(1, Warnings());
        host.Reload(With(maxConcurrency: 2, sampleRate: 0.1)); // a spare slot now: nothing to say
        Assert.Equal(1, Warnings());
        host.Reload(With(maxConcurrency: 1, sampleRate: 0.2));
        Assert.Equal(2, Warnings());
    }
}
