using System.Globalization;
using ERCache.Health;
using ERCache.Inference;
using ERCache.Internal;
using ERCache.Regional;
using ERCache.Testing;
using ERCache.Tests.Infrastructure;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Time.Testing;

namespace ERCache.Tests;

/// <summary>
/// Regional values that do not decode (DESIGN §2 rule 9) are never served, and the operator is told: a warning naming
/// the user and what the value held, a few lines a minute at most, and a degraded health check while a model's share of
/// refused values passes its threshold.
/// </summary>
public sealed class RegionalRefusalTests
{
    private const string Model = "ctr";
    private const int Dimensions = 4;
    private const int RefusedEvent = 41;

    public static TheoryData<string, string> Refusals => new()
    {
        { "older layout", "a value of layout 1 (48 bytes), where this library reads layout 2" },
        { "damaged header", "20 bytes with a damaged ERCache header" },
        { "no header", "3 bytes without an ERCache header" },
        { "other format", "Float16 of 4 dimensions in 40 bytes, where this model reads Float32 of 4 in 48" },
        { "other dimensions", "Float32 of 5 dimensions in more than 48 bytes, where this model reads Float32 of 4 in 48" },
        { "truncated", "Float32 of 4 dimensions in 44 bytes, where this model reads Float32 of 4 in 48" },
        { "other user", "the value of user 4, under this user's key" },
        { "other version", "a value of another model or version under this field (its fingerprint differs)" },
        { "not finite", "a row holding a value that is not finite" },
    };

    [Theory]
    [MemberData(nameof(Refusals))]
    public async Task A_refused_value_is_a_miss_logged_with_the_user_and_what_it_held(string kind, string expected)
    {
        using var host = new Host();
        host.Store.Set(3, Field, Value(kind, user: 3, host.Clock), TimeSpan.FromHours(1));

        var (result, vector) = await host.GetAsync(3);

        Assert.Equal(EmbeddingSource.Fresh, result.Source); // never served: inferred instead
        Assert.True(TestTower.BelongsTo(vector, 3));
        var line = Assert.Single(host.Logs.GetSnapshot(), r => r.Id.Id == RefusedEvent);
        Assert.Equal(Microsoft.Extensions.Logging.LogLevel.Warning, line.Level);
        Assert.Contains($"model '{Model}' for user 3: {expected}.", line.Message, StringComparison.Ordinal);
        Assert.Contains("(0 more of this kind since the last such line.)", line.Message, StringComparison.Ordinal);
        Assert.Equal((1, 1), (host.Counts.RegionalFound, host.Counts.RegionalRefused));
    }

    [Fact]
    public async Task One_line_per_kind_per_interval_with_the_count_left_out()
    {
        using var host = new Host();
        for (long user = 1; user <= 5; user++)
        {
            host.Store.Set(user, Field, Value("other version", user, host.Clock), TimeSpan.FromHours(1));
        }

        host.Store.Set(6, Field, Value("other user", 6, host.Clock), TimeSpan.FromHours(1));
        for (long user = 1; user <= 6; user++)
        {
            await host.GetAsync(user);
        }

        // The first of each kind; the four other versions' values of the same interval are counted, not logged.
        Assert.Equal(["user 1:", "user 6:"], Lines(host).Select(m => m[(m.IndexOf("user ", StringComparison.Ordinal))..(m.IndexOf(':', m.IndexOf("user ", StringComparison.Ordinal)) + 1)]));

        host.Clock.Advance(LogThrottle.Interval);
        host.Store.Set(7, Field, Value("other version", 7, host.Clock), TimeSpan.FromHours(1));
        await host.GetAsync(7);

        var last = Lines(host)[^1];
        Assert.Contains("for user 7:", last, StringComparison.Ordinal);
        Assert.Contains("(4 more of this kind since the last such line.)", last, StringComparison.Ordinal);
        Assert.Equal((7, 7), (host.Counts.RegionalFound, host.Counts.RegionalRefused));
    }

    [Fact]
    public async Task Every_value_found_counts_whether_served_or_not()
    {
        using var host = new Host();
        host.Cache.Clear(Model); // this host cleared the model a second ago:
        host.Clock.Advance(TimeSpan.FromSeconds(1));
        host.Store.Set(6, Field, Value("good", 6, host.Clock, writtenAgo: TimeSpan.FromSeconds(2)), TimeSpan.FromHours(1)); // cleared
        host.Store.Set(1, Field, Value("good", 1, host.Clock), TimeSpan.FromHours(1)); // a regional hit
        host.Store.Set(2, Field, Value("good", 2, host.Clock, writtenAgo: TimeSpan.FromMinutes(2)), TimeSpan.FromHours(1)); // stale
        host.Store.Set(3, Field, Value("good", 3, host.Clock, writtenAgo: -TimeSpan.FromMinutes(2)), TimeSpan.FromHours(1)); // future
        host.Store.Set(4, Field, Value("other user", 4, host.Clock), TimeSpan.FromHours(1)); // refused
        var results = new EmbeddingResult[6];

        await host.Cache.GetManyAsync(Model, new long[] { 1, 2, 3, 4, 5, 6 }, new float[6 * Dimensions], results); // 5: absent

        Assert.Equal(
            [EmbeddingSource.Regional, EmbeddingSource.Fresh, EmbeddingSource.Fresh, EmbeddingSource.Fresh, EmbeddingSource.Fresh, EmbeddingSource.Fresh],
            results.Select(r => r.Source));
        Assert.Equal((5, 1), (host.Counts.RegionalFound, host.Counts.RegionalRefused));
    }

    [Theory]
    [InlineData(100, 1, HealthStatus.Healthy)] // 1 of 101 found: 0.99 %, not past 1 %
    [InlineData(99, 2, HealthStatus.Degraded)] // 2 of 101: 1.98 %
    [InlineData(0, 99, HealthStatus.Healthy)] // every one refused, but 99 found are too few to judge (MinimumResults 100)
    public async Task The_health_check_is_degraded_while_the_refused_share_passes_its_threshold(int good, int refused, HealthStatus expected)
    {
        using var host = new Host();
        var check = new ERCacheHealthCheck(host.Cache);
        for (long user = 1; user <= good + refused; user++)
        {
            host.Store.Set(user, Field, Value(user <= good ? "good" : "other version", user, host.Clock), TimeSpan.FromHours(1));
        }

        for (long user = 1; user <= good + refused; user++)
        {
            await host.GetAsync(user);
        }

        var health = await HealthCheckTests.Check(check);
        Assert.True(expected == health.Status, health.Description);
        Assert.Equal((long)(good + refused), health.Data[$"{Model}.regional_found"]);
        Assert.Equal((long)refused, health.Data[$"{Model}.regional_refused"]);
        if (expected == HealthStatus.Degraded)
        {
            Assert.Contains($"model '{Model}': {(2.0 / 101).ToString("P1", CultureInfo.InvariantCulture)} of 101 regional values found over the last", health.Description, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task The_health_check_recovers_once_the_refusals_are_older_than_its_window()
    {
        using var host = new Host();
        var check = new ERCacheHealthCheck(host.Cache, new ERCacheHealthCheckOptions { MinimumResults = 10 });
        for (long user = 1; user <= 10; user++)
        {
            host.Store.Set(user, Field, Value("no header", user, host.Clock), TimeSpan.FromHours(1));
            await host.GetAsync(user);
        }

        Assert.Equal(HealthStatus.Degraded, (await HealthCheckTests.Check(check)).Status);

        host.Clock.Advance(TimeSpan.FromMinutes(1)); // the window: the refusals now lie before its start
        for (long user = 11; user <= 20; user++)
        {
            host.Store.Set(user, Field, Value("good", user, host.Clock), TimeSpan.FromHours(1));
            await host.GetAsync(user);
        }

        var health = await HealthCheckTests.Check(check);
        Assert.Equal(HealthStatus.Healthy, health.Status);
        Assert.Equal((10L, 0L), ((long)health.Data[$"{Model}.regional_found"], (long)health.Data[$"{Model}.regional_refused"]));
    }

    [Theory]
    [InlineData(-0.01)]
    [InlineData(1.5)]
    [InlineData(double.NaN)]
    public void An_out_of_range_threshold_is_refused_naming_the_setting_and_its_value(double threshold)
    {
        using var host = new Host();
        var error = Assert.Throws<ArgumentOutOfRangeException>(
            () => new ERCacheHealthCheck(host.Cache, new ERCacheHealthCheckOptions { RegionalRefusedShareThreshold = threshold }));
        Assert.Contains($"ERCacheHealthCheckOptions.RegionalRefusedShareThreshold must be between 0 and 1 (got {threshold})", error.Message, StringComparison.Ordinal);
    }

    private static string Field => RegionalValue.Field(Model, "v1");

    private static string[] Lines(Host host) => [.. host.Logs.GetSnapshot().Where(r => r.Id.Id == RefusedEvent).Select(r => r.Message)];

    /// <summary>A value for <paramref name="user"/>: good, or damaged the way <paramref name="kind"/> names.</summary>
    private static byte[] Value(string kind, long user, FakeTimeProvider clock, TimeSpan writtenAgo = default)
    {
        long now = (clock.GetUtcNow() - writtenAgo).ToUnixTimeMilliseconds();
        ulong Fingerprint(string version = "v1", int dimensions = Dimensions, StorageFormat format = StorageFormat.Float32) =>
            RegionalValue.Fingerprint(Model, version, dimensions, format);
        float[] row = [user, 9, 5, 6];
        var good = RegionalValue.Encode(StorageFormat.Float32, Fingerprint(), user, now, row);
        return kind switch
        {
            "good" => good,
            "older layout" => [.. good.Select((b, i) => i == 1 ? (byte)1 : b)],
            "damaged header" => good[..20],
            "no header" => [1, 2, 3],
            "other format" => RegionalValue.Encode(StorageFormat.Float16, Fingerprint(format: StorageFormat.Float16), user, now, row),
            "other dimensions" => RegionalValue.Encode(StorageFormat.Float32, Fingerprint(dimensions: 5), user, now, [.. row, 1]),
            "truncated" => good[..^4],
            "other user" => RegionalValue.Encode(StorageFormat.Float32, Fingerprint(), user + 1, now, [user + 1, 9, 5, 6]),
            "other version" => RegionalValue.Encode(StorageFormat.Float32, Fingerprint(version: "v0"), user, now, row),
            "not finite" => RegionalValue.Encode(StorageFormat.Float32, Fingerprint(), user, now, [user, float.NaN, 5, 6]),
            _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, null),
        };
    }

    /// <summary>One host on the in-memory store, with its warnings collected.</summary>
    private sealed class Host : IDisposable
    {
        private readonly ReloadableCache _host;

        public Host()
        {
            Store = new InMemoryRegionalStore(Clock);
            _host = new ReloadableCache(
                new ERCacheOptions { Models = { [Model] = CacheFixture.DefaultModel(Dimensions) }, Regional = { Invalidation = false } }, // one host: nothing to hear
                _ => Tower, Clock, InferenceDispatcher.Inline, Store);
        }

        public FakeTimeProvider Clock { get; } = new();

        public FakeLogCollector Logs => _host.Logs;

        public InMemoryRegionalStore Store { get; }

        public TestTower Tower { get; } = new();

        public EmbeddingCache Cache => _host.Cache;

        public Models.ResultCounts Counts => Cache.StatesForHealth().Single().Results;

        public async Task<(EmbeddingResult Result, float[] Vector)> GetAsync(long user)
        {
            var vector = new float[Dimensions];
            return (await Cache.GetAsync(Model, user, vector), vector);
        }

        public void Dispose() => _host.Dispose();
    }
}
