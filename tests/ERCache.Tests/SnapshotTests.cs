using ERCache.Inference;
using ERCache.Regional;
using ERCache.Testing;
using ERCache.Tests.Infrastructure;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace ERCache.Tests;

/// <summary>
/// DESIGN §2 rule 10, the warm restart: a cache disposed with <c>Snapshots</c> writes its tiers, and the next one loads
/// the entries of the same model, version, dimensions and format with their original wall-clock ages, skipping what
/// expired; a damaged or foreign snapshot is skipped with a log line and never served.
/// </summary>
public sealed class SnapshotTests : IDisposable
{
    private const string Model = "ctr";
    private readonly string _directory = Path.Combine(Path.GetTempPath(), $"ercache-snapshots-{Guid.NewGuid():N}");

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    public static TheoryData<StorageFormat, EvictionStrategy> Layouts()
    {
        var data = new TheoryData<StorageFormat, EvictionStrategy>();
        foreach (var format in Enum.GetValues<StorageFormat>())
        {
            foreach (var eviction in Enum.GetValues<EvictionStrategy>())
            {
                data.Add(format, eviction);
            }
        }

        return data;
    }

    private ERCacheOptions Options(StorageFormat format = StorageFormat.Float32, EvictionStrategy eviction = EvictionStrategy.Lru, string version = "v1", int dimensions = 8)
    {
        var model = CacheFixture.DefaultModel(dimensions);
        model.Version = version;
        model.Direct.Ttl = TimeSpan.FromMinutes(10);
        model.Direct.Format = format;
        model.Direct.Eviction = eviction;
        model.Failover.Format = format;
        model.Failover.Eviction = eviction;
        return new ERCacheOptions { Models = { [Model] = model }, Snapshots = { Directory = _directory } };
    }

    private static EmbeddingCache Start(ERCacheOptions options, TimeProvider clock, TestTower tower, ILogger? logger = null, IRegionalStore? store = null)
    {
        TestThread.LeaveSynchronizationContext();
        return EmbeddingCache.Create(
            options, new Dictionary<string, IEmbeddingInference> { [Model] = tower },
            new EmbeddingCacheServices { TimeProvider = clock, Dispatcher = InferenceDispatcher.Inline, Logger = logger, RegionalStore = store });
    }

    private string CrashedDirectory => Path.Combine(_directory, "crashed");

    /// <summary>Keeps a copy of the snapshot directory as a crash would leave it, before the graceful stop writes again.</summary>
    private void KeepFilesAsOfCrash()
    {
        Directory.CreateDirectory(CrashedDirectory);
        foreach (string file in Directory.GetFiles(_directory))
        {
            File.Copy(file, Path.Combine(CrashedDirectory, Path.GetFileName(file)));
        }
    }

    /// <summary>Puts the crash's copy back over what the graceful stop wrote: the graceful stop never happened.</summary>
    private void PutBackFilesAsOfCrash()
    {
        foreach (string file in Directory.GetFiles(CrashedDirectory))
        {
            File.Copy(file, Path.Combine(_directory, Path.GetFileName(file)), overwrite: true);
        }
    }

    /// <summary>Users 1..20 inferred at minute 0 and 21..40 at minute 8 (each twice: its vector as served), then the
    /// process stops at minute 9 and writes its snapshots.</summary>
    private static async Task<Dictionary<long, float[]>> RunFirstProcessAsync(ERCacheOptions options, FakeTimeProvider clock)
    {
        var served = new Dictionary<long, float[]>();
        await using var cache = Start(options, clock, new TestTower { Generation = 1 });
        int dims = options.Models[Model].Dimensions;
        foreach (var (from, at) in new[] { (1, 0), (21, 8) })
        {
            clock.SetUtcNow(Epoch + TimeSpan.FromMinutes(at));
            for (long user = from; user < from + 20; user++)
            {
                await cache.GetAsync(Model, user, new float[dims]);
                var vector = new float[dims];
                Assert.Equal(EmbeddingSource.Direct, (await cache.GetAsync(Model, user, vector)).Source); // as the tier returns it
                served[user] = vector;
            }
        }

        clock.SetUtcNow(Epoch + TimeSpan.FromMinutes(9));
        return served;
    }

    private static readonly DateTimeOffset Epoch = new(2026, 12, 3, 12, 0, 0, TimeSpan.Zero);

    [Theory]
    [MemberData(nameof(Layouts))]
    public async Task A_restart_serves_the_snapshot_with_original_ages_and_skips_what_expired(StorageFormat format, EvictionStrategy eviction)
    {
        var options = Options(format, eviction);
        var served = await RunFirstProcessAsync(options, new FakeTimeProvider(Epoch));

        // The next process starts at minute 12.
        var clock = new FakeTimeProvider(Epoch + TimeSpan.FromMinutes(12));
        var tower = new TestTower { Generation = 2 };
        await using var cache = Start(options, clock, tower);
        await cache.WhenReadyAsync();

        Assert.Equal(40, cache.GetEntryCount(Model, TierKind.Failover));
        Assert.Equal(20, cache.GetEntryCount(Model, TierKind.Direct)); // users 1..20 were 12 min old: past the 10-min direct TTL
        int dims = options.Models[Model].Dimensions;
        for (long user = 21; user <= 40; user++)
        {
            var vector = new float[dims];
            var result = await cache.GetAsync(Model, user, vector);
            Assert.Equal((EmbeddingSource.Direct, TimeSpan.FromMinutes(4)), (result.Source, result.Age));
            Assert.Equal(served[user], vector);
        }

        var old = await cache.GetAsync(Model, 1, new float[dims]); // expired in the direct tier: inferred again
        Assert.Equal(EmbeddingSource.Fresh, old.Source);
        Assert.Equal([1L], tower.Calls.Single());
    }

    [Fact]
    public async Task The_failover_tier_keeps_its_restored_vectors_for_the_failure_path()
    {
        var options = Options();
        var served = await RunFirstProcessAsync(options, new FakeTimeProvider(Epoch));
        var clock = new FakeTimeProvider(Epoch + TimeSpan.FromMinutes(30));
        var tower = new TestTower { PerUser = (_, _, _, _) => throw new InvalidOperationException("the tower is down") };
        await using var cache = Start(options, clock, tower);
        await cache.WhenReadyAsync();

        var vector = new float[8];
        var result = await cache.GetAsync(Model, 5, vector);
        Assert.Equal((EmbeddingSource.Failover, TimeSpan.FromMinutes(30)), (result.Source, result.Age));
        Assert.Equal(served[5], vector);
    }

    public static TheoryData<string> Damages => ["truncated", "truncated header", "corrupt byte", "foreign file", "older format version", "other model version", "other dimensions", "empty file"];

    [Theory]
    [MemberData(nameof(Damages))]
    public async Task A_damaged_or_foreign_snapshot_is_skipped_with_a_log_line_and_never_served(string damage)
    {
        await RunFirstProcessAsync(Options(), new FakeTimeProvider(Epoch));
        string path = Directory.GetFiles(_directory, "*.direct.*").Single();
        var bytes = File.ReadAllBytes(path);
        var options = Options();
        string expected;
        switch (damage)
        {
            case "truncated":
                File.WriteAllBytes(path, bytes[..(bytes.Length - 100)]);
                expected = "truncated";
                break;
            case "truncated header":
                File.WriteAllBytes(path, bytes[..20]);
                expected = "truncated";
                break;
            case "corrupt byte":
                bytes[bytes.Length / 2] ^= 0x40;
                File.WriteAllBytes(path, bytes);
                expected = "corrupt: the checksum does not match";
                break;
            case "foreign file":
                File.WriteAllBytes(path, System.Text.Encoding.UTF8.GetBytes(new string('x', bytes.Length)));
                expected = "foreign";
                break;
            case "older format version":
                bytes[8] = 0;
                bytes[9] = 0;
                File.WriteAllBytes(path, bytes);
                expected = "format version 0";
                break;
            case "other model version":
                options = Options(version: "v2");
                expected = "taken for model 'ctr' version 'v1'";
                break;
            case "other dimensions":
                options = Options(dimensions: 4);
                expected = "8 dimensions";
                break;
            default:
                File.WriteAllBytes(path, []);
                expected = "truncated";
                break;
        }

        var logs = new FakeLogCollector();
        var clock = new FakeTimeProvider(Epoch + TimeSpan.FromMinutes(9));
        await using var cache = Start(options, clock, new TestTower { Generation = 2 }, new FakeLogger<EmbeddingCache>(logs));
        await cache.WhenReadyAsync();

        Assert.Equal(0, cache.GetEntryCount(Model, TierKind.Direct));
        var skipped = Assert.Single(logs.GetSnapshot(), r => r.Id.Id == 30 && r.Message.Contains(".direct."));
        Assert.Contains(expected, skipped.Message);
        Assert.Equal(LogLevel.Warning, skipped.Level);
        var vector = new float[options.Models[Model].Dimensions];
        var result = await cache.GetAsync(Model, 25, vector);
        Assert.NotEqual(EmbeddingSource.Direct, result.Source);
        Assert.Equal(2, TestTower.GenerationOf(vector)); // inferred by this process, nothing of the damaged file
    }

    [Theory]
    [InlineData(EvictionStrategy.Lru)]
    [InlineData(EvictionStrategy.Fifo)]
    [InlineData(EvictionStrategy.Sieve)]
    public async Task A_restart_into_a_smaller_tier_keeps_the_newest_entries_and_evicts_the_oldest_of_them_first(EvictionStrategy eviction)
    {
        var options = Options(eviction: eviction);
        var clock = new FakeTimeProvider(Epoch);
        await using (var first = Start(options, clock, new TestTower { Generation = 1 }))
        {
            foreach (long user in Enumerable.Range(1, 20).Select(i => (long)((i * 7) % 20) + 1)) // a slot order that is not time order
            {
                clock.Advance(TimeSpan.FromSeconds(1));
                await first.GetAsync(Model, user, new float[8]);
            }
        }

        var logs = new FakeLogCollector();
        options.Models[Model].Direct.Capacity = 8;
        var tower = new TestTower { Generation = 2 };
        await using var cache = Start(options, clock, tower, new FakeLogger<EmbeddingCache>(logs));
        await cache.WhenReadyAsync();

        var loaded = Assert.Single(logs.GetSnapshot(), r => r.Id.Id == 29 && r.Message.Contains(".direct."));
        Assert.Contains(": 8 entries, 0 too old, 0 kept because the tier held a newer vector or the user was removed meanwhile, 12 left out because the tier was full of newer entries", loaded.Message);
        long[] written = [.. Enumerable.Range(1, 20).Select(i => (long)((i * 7) % 20) + 1)];
        var newest = written[^8..];
        Assert.Equal(newest.Order(), DirectUsers(cache, written)); // the eight written last

        await cache.GetAsync(Model, 100, new float[8]); // a miss evicts the oldest restored entry
        await cache.GetAsync(Model, 101, new float[8]);
        Assert.Equal(newest[2..].Order(), DirectUsers(cache, written));
    }

    /// <summary>Which of <paramref name="users"/> the direct tier holds, read without counting a hit.</summary>
    private static IEnumerable<long> DirectUsers(EmbeddingCache cache, long[] users)
    {
        var tier = cache.GetTier(Model, TierKind.Direct)!;
        return users.Where(u => tier.TryGetWrittenAt(u, now: long.MaxValue - 1, ttl: long.MaxValue, out _)).Order();
    }

    [Fact]
    public void A_restored_entry_never_replaces_a_newer_one_or_a_removed_user()
    {
        var model = CacheFixture.DefaultModel(4);
        var policy = ModelPolicy.From(Model, model);
        using var metrics = new Diagnostics.ERCacheMetrics(null);
        var tier = Tiers.TierFactory.Create(policy, policy.Direct, metrics)!;
        float[] newer = [1, 2, 3, 4], older = [5, 6, 7, 8];
        tier.Write(1, newer, writtenAt: 100);

        Assert.False(tier.TryWriteNewer(1, older, writtenAt: 50, long.MaxValue, _ => false));
        Assert.False(tier.TryWriteNewer(2, older, writtenAt: 50, long.MaxValue, user => user == 2));
        Assert.True(tier.TryWriteNewer(3, older, writtenAt: 50, long.MaxValue, _ => false));
        Assert.True(tier.TryWriteNewer(1, older, writtenAt: 150, long.MaxValue, _ => false)); // the snapshot's is newer here

        var read = new float[4];
        Assert.True(tier.TryRead(3, 60, long.MaxValue, read, out long at));
        Assert.Equal(older, read);
        Assert.Equal(50L, at);
        Assert.False(tier.TryRead(2, 60, long.MaxValue, read, out _));
    }

    [Fact]
    public async Task A_removal_while_the_snapshot_loads_is_not_undone_by_the_load()
    {
        // The load runs in the background; a removal recorded before it writes the user wins, whatever the interleaving.
        var served = await RunFirstProcessAsync(Options(), new FakeTimeProvider(Epoch));
        var clock = new FakeTimeProvider(Epoch + TimeSpan.FromMinutes(9));
        await using var cache = Start(Options(), clock, new TestTower { Generation = 2 });
        await cache.RemoveAsync(30);
        await cache.WhenReadyAsync();

        var vector = new float[8];
        var result = await cache.GetAsync(Model, 30, vector);
        Assert.Equal(EmbeddingSource.Fresh, result.Source);
        Assert.NotEqual(served[30], vector);
        Assert.Equal(EmbeddingSource.Direct, (await cache.GetAsync(Model, 31, vector)).Source);
    }

    public static TheoryData<string> Operations => ["remove", "remove from every model", "push", "clear"];

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_removal_is_not_undone_after_a_crash_when_the_wall_clock_stepped_back_since_the_snapshot(bool inTheNextProcess)
    {
        // The snapshot of minute 9 holds user 30 written at minute 8. Then the wall clock steps back 2 minutes (the
        // monotonic clock does not), in the same process or before the next one, which restores that snapshot; then
        // user 30 is removed and the process crashes. The removal's record must cover the entry all the same.
        var options = Options();
        var fake = new FakeTimeProvider(Epoch);
        var clock = new SteppedWallClock(fake);
        await using (var cache = Start(options, clock, new TestTower { Generation = 1 }))
        {
            fake.SetUtcNow(Epoch + TimeSpan.FromMinutes(8));
            foreach (long user in new long[] { 30, 31 })
            {
                await cache.GetAsync(Model, user, new float[8]);
            }

            fake.SetUtcNow(Epoch + TimeSpan.FromMinutes(9));
            await cache.WriteSnapshotsAsync();
            if (!inTheNextProcess)
            {
                clock.Offset = TimeSpan.FromMinutes(-2);
                fake.Advance(TimeSpan.FromSeconds(5));
                await cache.RemoveAsync(Model, 30);
                KeepFilesAsOfCrash();
            }
        }

        if (inTheNextProcess)
        {
            clock.Offset = TimeSpan.FromMinutes(-2);
            fake.Advance(TimeSpan.FromSeconds(5));
            await using var restarted = Start(options, clock, new TestTower { Generation = 2 });
            await restarted.WhenReadyAsync();
            Assert.Equal(EmbeddingSource.Direct, (await restarted.GetAsync(Model, 30, new float[8])).Source); // restored, 55 s "ahead"
            await restarted.RemoveAsync(Model, 30);
            KeepFilesAsOfCrash();
        }

        PutBackFilesAsOfCrash();

        fake.Advance(TimeSpan.FromSeconds(10));
        await using var next = Start(options, clock, new TestTower { Generation = 3 });
        await next.WhenReadyAsync();

        var vector = new float[8];
        Assert.Equal(EmbeddingSource.Fresh, (await next.GetAsync(Model, 30, vector)).Source);
        Assert.Equal(3, TestTower.GenerationOf(vector));
        Assert.Equal(EmbeddingSource.Direct, (await next.GetAsync(Model, 31, vector)).Source); // the rest of the snapshot is restored
    }

    [Fact]
    public void A_snapshot_says_when_it_was_taken_only_to_a_reader_it_could_be_restored_for()
    {
        using var metrics = new Diagnostics.ERCacheMetrics(null);
        var tier = TierHelper.Create("Lru", capacity: 16, dimensions: 4, metrics);
        TierHelper.WriteUsers(tier, 0, 3);
        var identity = new Tiers.Snapshots.SnapshotIdentity(Model, "v1", 4, StorageFormat.Float32, TierKind.Direct);
        string path = Path.Combine(_directory, "a.direct.ercache-snapshot");
        Directory.CreateDirectory(_directory);
        Assert.Null(Tiers.Snapshots.TierSnapshotFile.TakenAt(path, identity)); // no file

        Tiers.Snapshots.TierSnapshotFile.Write(tier, identity, path, nowUnixMs: 123_456, at => at, CancellationToken.None);

        Assert.Equal(123_456, Tiers.Snapshots.TierSnapshotFile.TakenAt(path, identity));
        Assert.Null(Tiers.Snapshots.TierSnapshotFile.TakenAt(path, identity with { Version = "v2" }));
        Assert.Null(Tiers.Snapshots.TierSnapshotFile.TakenAt(path, identity with { Format = StorageFormat.Float16 }));
        File.WriteAllBytes(path, "ERCSNAP1"u8.ToArray()); // cut in its header
        Assert.Null(Tiers.Snapshots.TierSnapshotFile.TakenAt(path, identity));
    }

    /// <summary>A clock whose wall time can step (<see cref="Offset"/>) while its monotonic timestamps go on, as when a
    /// host's time is set back.</summary>
    private sealed class SteppedWallClock(FakeTimeProvider inner) : TimeProvider
    {
        public TimeSpan Offset { get; set; }

        public override DateTimeOffset GetUtcNow() => inner.GetUtcNow() + Offset;

        public override long GetTimestamp() => inner.GetTimestamp();

        public override long TimestampFrequency => inner.TimestampFrequency;

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period) =>
            inner.CreateTimer(callback, state, dueTime, period);
    }

    [Theory]
    [MemberData(nameof(Operations))]
    public async Task An_operation_after_the_last_snapshot_is_not_undone_by_it_after_a_crash(string operation)
    {
        // The first process writes its snapshots at minute 9, then removes, pushes or clears, then crashes: what it left
        // on disk is the snapshot of minute 9 and the removal log as of the crash.
        var options = Options();
        var clock = new FakeTimeProvider(Epoch);
        await using (var cache = Start(options, clock, new TestTower { Generation = 1 }))
        {
            clock.SetUtcNow(Epoch + TimeSpan.FromMinutes(8));
            foreach (long user in new long[] { 30, 31 })
            {
                await cache.GetAsync(Model, user, new float[8]);
            }

            clock.SetUtcNow(Epoch + TimeSpan.FromMinutes(9));
            await cache.WriteSnapshotsAsync();
            clock.Advance(TimeSpan.FromSeconds(5));
            switch (operation)
            {
                case "remove": await cache.RemoveAsync(Model, 30); break;
                case "remove from every model": await cache.RemoveAsync(30); break;
                case "push": cache.SetVector(Model, 30, new float[8]); break;
                default: cache.Clear(Model); break;
            }

            // A removal or clear is synced to disk before it goes on (it survives the machine's crash); a push is not.
            Assert.Equal(operation == "push" ? 0 : 1, cache.Snapshots!.RemovalLogOf(Model)!.SyncedAppends);

            KeepFilesAsOfCrash();
        }

        PutBackFilesAsOfCrash();

        var logs = new FakeLogCollector();
        clock.SetUtcNow(Epoch + TimeSpan.FromMinutes(10));
        await using var next = Start(options, clock, new TestTower { Generation = 2 }, new FakeLogger<EmbeddingCache>(logs));
        await next.WhenReadyAsync();

        var vector = new float[8];
        Assert.Equal(EmbeddingSource.Fresh, (await next.GetAsync(Model, 30, vector)).Source); // neither the removed nor the superseded vector
        Assert.Equal(2, TestTower.GenerationOf(vector));
        var expectedOther = operation == "clear" ? EmbeddingSource.Fresh : EmbeddingSource.Direct;
        Assert.Equal(expectedOther, (await next.GetAsync(Model, 31, vector)).Source);
        var loaded = Assert.Single(logs.GetSnapshot(), r => r.Id.Id == 29 && r.Message.Contains(".direct."));
        Assert.Contains(operation == "clear" ? "2 removed or superseded" : "1 removed or superseded", loaded.Message);
    }

    [Fact]
    public async Task Writing_every_tier_drops_the_removals_the_snapshot_already_holds_and_keeps_the_recent_ones()
    {
        var options = Options();
        var clock = new FakeTimeProvider(Epoch);
        string log = Path.Combine(_directory, "ctr.removals.ercache-log");
        await using var cache = Start(options, clock, new TestTower());
        await cache.RemoveAsync(Model, 1);
        await cache.RemoveAsync(Model, 2);
        Assert.Equal(8 + (2 * 16), new FileInfo(log).Length); // the magic and two records

        clock.Advance(TimeSpan.FromMinutes(5));
        await cache.RemoveAsync(Model, 3);
        clock.Advance(Models.SnapshotKeeper.RemovalLogMargin - TimeSpan.FromSeconds(1));
        await cache.WriteSnapshotsAsync();
        Assert.Equal(8 + 16, new FileInfo(log).Length); // users 1 and 2 were removed before the snapshot; 3 within the margin

        await cache.RemoveAsync(Model, 4); // appended after the rewrite
        var records = Tiers.Snapshots.RemovalLog.Read(log)!;
        Assert.True(records.Covers(3, Epoch.AddMinutes(5).ToUnixTimeMilliseconds()));
        Assert.True(records.Covers(4, clock.GetUtcNow().ToUnixTimeMilliseconds()));
        Assert.False(records.Covers(1, 0));
        Assert.Equal(2, records.Users);
    }

    [Fact]
    public async Task A_bulk_of_pushes_that_fills_half_the_removal_log_has_the_snapshots_written()
    {
        // Otherwise the log would fill, and its record for every user would make the snapshots useless until the next.
        await using var cache = Start(Options(), new FakeTimeProvider(Epoch), new TestTower());
        await cache.WhenReadyAsync();
        var vector = new float[8];
        for (long user = 0; user < (Tiers.Snapshots.RemovalLog.DefaultMaxRecords / 2) - 1; user++)
        {
            cache.SetVector(Model, user, vector);
        }

        Assert.False(Directory.Exists(_directory) && Directory.GetFiles(_directory, "*.ercache-snapshot").Length > 0);
        cache.SetVector(Model, -1, vector); // the record that makes it half full

        await Poll.Until(() => Directory.GetFiles(_directory, "*.ercache-snapshot").Length == 2, "the snapshots were not written");
    }

    [Fact]
    public async Task A_removal_that_cannot_be_logged_deletes_the_model_snapshots_and_logs_an_error()
    {
        var logs = new FakeLogCollector();
        var clock = new FakeTimeProvider(Epoch);
        await using var cache = Start(Options(), clock, new TestTower(), new FakeLogger<EmbeddingCache>(logs));
        await cache.GetAsync(Model, 5, new float[8]);
        await cache.WriteSnapshotsAsync();
        Assert.Equal(2, Directory.GetFiles(_directory, "*.ercache-snapshot").Length);
        Directory.CreateDirectory(Path.Combine(_directory, "ctr.removals.ercache-log")); // the log's path cannot be a file

        Assert.Equal(2, await cache.RemoveAsync(Model, 5)); // the removal itself is done

        Assert.Empty(Directory.GetFiles(_directory, "*.ercache-snapshot")); // a cold start rather than user 5 back
        var error = Assert.Single(logs.GetSnapshot(), r => r.Id.Id == 40);
        Assert.Equal(LogLevel.Error, error.Level);
        Assert.Contains("ctr.removals.ercache-log", error.Message);
    }

    [Fact]
    public async Task A_failed_snapshot_write_keeps_the_health_check_degraded_until_a_write_succeeds()
    {
        await using var cache = Start(Options(), new FakeTimeProvider(Epoch), new TestTower());
        await cache.WhenReadyAsync();
        var check = new Health.ERCacheHealthCheck(cache);
        await cache.GetAsync(Model, 5, new float[8]);
        string direct = Models.SnapshotKeeper.PathOf(_directory, Model, TierKind.Direct);
        Directory.CreateDirectory(direct); // the file's path is a directory: the finished file cannot replace it

        await cache.WriteSnapshotsAsync();

        var failed = await HealthCheckTests.Check(check);
        Assert.Equal(HealthStatus.Degraded, failed.Status);
        Assert.Contains($"snapshots: the last write of {direct} failed (", failed.Description, StringComparison.Ordinal);
        Assert.Equal(1, failed.Data["snapshot_problems"]);

        Directory.Delete(direct);
        await cache.WriteSnapshotsAsync();
        var written = await HealthCheckTests.Check(check);
        Assert.Equal(HealthStatus.Healthy, written.Status);
        Assert.Equal(0, written.Data["snapshot_problems"]);
    }

    [Fact]
    public async Task A_snapshot_write_past_its_WriteTimeout_abandons_the_next_tier_and_keeps_the_health_check_degraded_until_a_write_succeeds()
    {
        var clock = new FakeTimeProvider(Epoch);
        var options = Options();
        await using var cache = Start(options, clock, new TestTower());
        await cache.WhenReadyAsync();
        var check = new Health.ERCacheHealthCheck(cache);
        await cache.GetAsync(Model, 5, new float[8]);
        string direct = Models.SnapshotKeeper.PathOf(_directory, Model, TierKind.Direct);
        string failover = Models.SnapshotKeeper.PathOf(_directory, Model, TierKind.Failover);
        cache.Snapshots!.BeforeRename = path =>
        {
            if (path == direct)
            {
                clock.Advance(options.Snapshots.WriteTimeout); // the direct tier took the whole budget
            }
        };

        await cache.WriteSnapshotsAsync();

        Assert.True(File.Exists(direct)); // finished before the deadline was seen: complete, so it stays
        Assert.False(File.Exists(failover));
        var abandoned = await HealthCheckTests.Check(check);
        Assert.Equal(HealthStatus.Degraded, abandoned.Status);
        Assert.Contains(
            $"snapshots: the last write abandoned {failover} after Snapshots:WriteTimeout {options.Snapshots.WriteTimeout}",
            abandoned.Description,
            StringComparison.Ordinal);

        cache.Snapshots.BeforeRename = null;
        await cache.WriteSnapshotsAsync();
        Assert.True(File.Exists(failover));
        Assert.Equal(HealthStatus.Healthy, (await HealthCheckTests.Check(check)).Status);
    }

    [Theory]
    [InlineData("a removal")]
    [InlineData("a snapshot write")] // which shortens the log
    public async Task A_removal_that_cannot_be_logged_keeps_the_health_check_degraded_until_the_log_is_written_again(string writesTheLog)
    {
        await using var cache = Start(Options(), new FakeTimeProvider(Epoch), new TestTower());
        await cache.WhenReadyAsync();
        var check = new Health.ERCacheHealthCheck(cache);
        await cache.GetAsync(Model, 5, new float[8]);
        await cache.WriteSnapshotsAsync();
        string log = Path.Combine(_directory, "ctr.removals.ercache-log");
        Directory.CreateDirectory(log); // the log's path cannot be a file

        await cache.RemoveAsync(Model, 5);
        await cache.WriteSnapshotsAsync(); // new snapshots, but a log that cannot be read restores nothing of the model

        var degraded = await HealthCheckTests.Check(check);
        Assert.Equal(HealthStatus.Degraded, degraded.Status);
        Assert.Contains("snapshots: 1 removal(s) of model 'ctr' could not be logged in", degraded.Description, StringComparison.Ordinal);
        Assert.Contains("the next restart starts it cold", degraded.Description, StringComparison.Ordinal);

        Directory.Delete(log);
        if (writesTheLog == "a removal")
        {
            await cache.RemoveAsync(Model, 6);
        }
        else
        {
            await cache.WriteSnapshotsAsync();
        }

        Assert.Equal(HealthStatus.Healthy, (await HealthCheckTests.Check(check)).Status);
    }

    [Fact]
    public async Task A_removal_that_cannot_be_logged_during_a_snapshot_write_deletes_what_the_write_made()
    {
        // The walk has written user 5 when the removal runs; the removal's log fails and deletes the model's snapshots,
        // then the finished file would replace them with user 5 in it, and no log to drop it at the restore.
        await using var cache = Start(Options(), new FakeTimeProvider(Epoch), new TestTower());
        await cache.WhenReadyAsync();
        await cache.GetAsync(Model, 5, new float[8]);
        string log = Path.Combine(_directory, "ctr.removals.ercache-log");
        int renames = 0;
        cache.Snapshots!.BeforeRename = _ =>
        {
            if (Interlocked.Increment(ref renames) == 1)
            {
                Directory.CreateDirectory(log);
                Assert.Equal(2, cache.RemoveAsync(Model, 5).GetAwaiter().GetResult());
            }
        };

        await cache.WriteSnapshotsAsync();

        Assert.Equal(2, renames); // both tiers were walked and finished
        Assert.Empty(Directory.GetFiles(_directory, "*.ercache-snapshot"));
        Assert.Contains(cache.Snapshots.Problems, p => p.Contains("was deleted: a removal that could not be logged ran meanwhile", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("one model")]
    [InlineData("every model")]
    public async Task A_snapshot_written_while_an_unlogged_removal_waits_for_the_store_is_deleted_once_the_removal_ends(string removes)
    {
        // The removal's record fails first; then, while it waits for the regional store, a snapshot walks the tiers
        // (the user is still there) and is written whole. Once the removal has changed the tiers, that file goes too.
        var clock = new FakeTimeProvider(Epoch);
        var store = new GatedRegionalStore(clock);
        var options = Options();
        options.Regional.Invalidation = false;
        await using var cache = Start(options, clock, new TestTower(), store: store);
        await cache.WhenReadyAsync();
        await cache.GetAsync(Model, 5, new float[8]);
        Directory.CreateDirectory(Path.Combine(_directory, "ctr.removals.ercache-log")); // the log's path cannot be a file
        store.RemovalGate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var removal = removes == "one model" ? cache.RemoveAsync(Model, 5) : cache.RemoveAsync(5);
        await cache.WriteSnapshotsAsync();
        Assert.Equal(2, Directory.GetFiles(_directory, "*.ercache-snapshot").Length); // user 5 in them, no record
        Assert.False(removal.IsCompleted);

        store.RemovalGate.SetResult();
        Assert.Equal(2, await removal.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Empty(Directory.GetFiles(_directory, "*.ercache-snapshot"));
    }

    [Fact]
    public async Task A_removal_log_that_cannot_be_read_restores_nothing_of_the_model()
    {
        await RunFirstProcessAsync(Options(), new FakeTimeProvider(Epoch));
        File.WriteAllBytes(Path.Combine(_directory, "ctr.removals.ercache-log"), "not a removal log"u8.ToArray());

        var logs = new FakeLogCollector();
        await using var cache = Start(Options(), new FakeTimeProvider(Epoch + TimeSpan.FromMinutes(9)), new TestTower(), new FakeLogger<EmbeddingCache>(logs));
        await cache.WhenReadyAsync();

        Assert.Equal(0, cache.GetEntryCount(Model, TierKind.Direct));
        Assert.Equal(0, cache.GetEntryCount(Model, TierKind.Failover));
        Assert.Equal(LogLevel.Error, Assert.Single(logs.GetSnapshot(), r => r.Id.Id == 40).Level);
    }

    [Fact]
    public async Task A_cache_without_snapshots_is_ready_at_once_and_writing_is_a_no_op()
    {
        var options = Options();
        options.Snapshots.Directory = null;
        await using var cache = Start(options, new FakeTimeProvider(Epoch), new TestTower());
        Assert.True(cache.WhenReadyAsync().IsCompletedSuccessfully);
        await cache.WriteSnapshotsAsync();
        Assert.False(Directory.Exists(_directory));
    }

    [Theory]
    [InlineData("Interval", "ERCache:Snapshots:Interval must be between 00:01:00 and 1.00:00:00 (got 00:00:05)")]
    [InlineData("LoadTimeout", "ERCache:Snapshots:LoadTimeout must be positive and at most 00:10:00 (got 00:00:00)")]
    [InlineData("Directory", "ERCache:Snapshots:Directory must be a directory path (got ' ')")]
    public void Bad_snapshot_settings_fail_with_their_path(string setting, string message)
    {
        var options = Options();
        switch (setting)
        {
            case "Interval": options.Snapshots.Interval = TimeSpan.FromSeconds(5); break;
            case "LoadTimeout": options.Snapshots.LoadTimeout = TimeSpan.Zero; break;
            default: options.Snapshots.Directory = " "; break;
        }

        var error = Assert.ThrowsAny<Exception>(() => Start(options, new FakeTimeProvider(), new TestTower()));
        Assert.Contains(message, error.Message);
    }

    [Fact]
    public async Task Periodic_snapshots_follow_the_interval()
    {
        var options = Options();
        options.Snapshots.Interval = TimeSpan.FromMinutes(5);
        var clock = new FakeTimeProvider(Epoch);
        await using var cache = Start(options, clock, new TestTower());
        await cache.WhenReadyAsync();
        await cache.GetAsync(Model, 1, new float[8]);
        Assert.False(Directory.Exists(_directory));
        clock.Advance(TimeSpan.FromMinutes(5));
        await cache.WriteSnapshotsAsync(); // waits for a write under way (the timer's), then writes again
        Assert.Equal(2, Directory.GetFiles(_directory, "*.ercache-snapshot").Length);
        Assert.Empty(Directory.GetFiles(_directory, "*.tmp"));
    }

    [Fact]
    public async Task Snapshots_still_work_beside_a_store_without_invalidation()
    {
        // Without the channel, other hosts' removals never reach the local tiers anyway; the snapshot adds no new gap.
        var clock = new FakeTimeProvider(Epoch);
        var noChannel = new GatedRegionalStore(clock);
        var off = Options();
        off.Regional = new RegionalOptions { Invalidation = false };
        var store = new InMemoryRegionalStore(clock);
        var expected = new float[8];
        await using (var first = StartWithStore(Options(), clock, noChannel))
        {
            await first.GetAsync(Model, 5, expected);
        }

        await using (var second = StartWithStore(off, clock, store))
        {
            await second.WhenReadyAsync();
            var vector = new float[8];
            Assert.Equal(EmbeddingSource.Direct, (await second.GetAsync(Model, 5, vector)).Source); // restored
            Assert.Equal(expected, vector);
        }
    }

    private static EmbeddingCache StartWithStore(ERCacheOptions options, FakeTimeProvider clock, IRegionalStore store)
    {
        TestThread.LeaveSynchronizationContext();
        return EmbeddingCache.Create(
            options, new Dictionary<string, IEmbeddingInference> { [Model] = new TestTower { Generation = 1 } },
            new EmbeddingCacheServices { TimeProvider = clock, Dispatcher = InferenceDispatcher.Inline, RegionalStore = store });
    }
}
