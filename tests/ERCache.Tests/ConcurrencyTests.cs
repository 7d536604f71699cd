using ERCache.Testing;
using System.Collections.Concurrent;
using ERCache.Inference;
using Microsoft.Extensions.Time.Testing;
using ERCache.Tiers.Eviction;
using ERCache.Diagnostics;
using ERCache.Tests.Infrastructure;
using ERCache.Storage;
using ERCache.Tiers;

namespace ERCache.Tests;

/// <summary>Hammers each shared structure from several threads, then checks its invariants.</summary>
[Collection(SoakDefinition.Name)]
public sealed class ConcurrencyTests
{
    // Soak tests are bounded by iterations, not by wall-clock time: the same work on a fast or a slow machine.
    private const int TierOperationsPerThread = 150_000;
    private const int CacheCallsPerCaller = 15_000;
    private const int HitsPerReader = 400_000;

    /// <summary>Row of user <paramref name="user"/> at write number <paramref name="write"/>: every value depends on
    /// both, so a copy mixing two writes, or two users, is detectable. Values are integers in [-128, 127] with the row's
    /// minimum and maximum pinned, so every format holds them exactly (Float16 holds such integers; Int8's step is 1).
    /// Users are identified modulo 256, so the tests keep user ids below 256.</summary>
    private static void FillWrite(Span<float> row, long user, int write)
    {
        row[0] = -128;
        row[1] = 127;
        row[2] = (user % 256) - 128;
        row[3] = (write % 256) - 128;
        for (int j = 4; j < row.Length; j++)
        {
            row[j] = Value(user, write, j);
        }
    }

    private static float Value(long user, int write, int j) => (((user * 31) + (write * 17) + j) % 256) - 128;

    private static bool IsConsistent(ReadOnlySpan<float> row, long user)
    {
        if (row[0] != -128 || row[1] != 127 || row[2] != (user % 256) - 128)
        {
            return false;
        }

        int write = (int)row[3] + 128;
        for (int j = 4; j < row.Length; j++)
        {
            if (row[j] != Value(user, write, j))
            {
                return false;
            }
        }

        return true;
    }

    [Theory]
    [InlineData("Lru", "Float32", null)]
    [InlineData("Fifo", "Float32", null)]
    [InlineData("Sieve", "Float32", null)]
    [InlineData("MemoryCache", "Float32", null)]
    [InlineData("Lru", "Float16", null)]
    [InlineData("Sieve", "Float16", null)]
    [InlineData("Lru", "Int8", null)]
    [InlineData("Fifo", "Int8", null)]
    [InlineData("Lru", "Float32", 20_000L)]
    [InlineData("Sieve", "Int8", 12_000L)]
    [InlineData("Lru", "Float32", null, 16_500, 512)] // 34 MB: pinned slabs with whole huge pages advised, on Linux
    public void Eight_threads_of_random_reads_and_writes_never_see_a_torn_or_foreign_vector(
        string eviction, string format, long? maxBytes, int capacity = 64, int dims = 64)
    {
        int keySpace = capacity * 4 - 6; // 250 for the small tiers
        using var metrics = new ERCacheMetrics(null);
        var tier = TierHelper.Create(eviction, capacity, dims, metrics, format: format, maxBytes: maxBytes);
        int bound = tier.Capacity;
        Assert.True(maxBytes is null ? bound == capacity : bound < capacity, $"capacity {bound}");
        long reads = 0, hits = 0, writes = 0, bad = 0, overCapacity = 0, overBytes = 0;

        CheckedThread.RunAll(Enumerable.Range(0, 8).Select(t => (Action)(() =>
        {
            var rng = new Random(t);
            var buffer = new float[dims];
            var group = new long[EmbeddingTier.PrefetchBatch];
            var candidates = new int[EmbeddingTier.PrefetchBatch];
            int writeNo = 0;
            for (int op = 0; op < TierOperationsPerThread; op++)
            {
                long user = rng.Next(keySpace);
                if (rng.Next(4) == 0)
                {
                    FillWrite(buffer, user, ++writeNo);
                    tier.Write(user, buffer, writtenAt: 1);
                    Interlocked.Increment(ref writes);
                }
                else
                {
                    Interlocked.Increment(ref reads);
                    bool hit;
                    if ((op & 1) == 0)
                    {
                        hit = tier.TryRead(user, now: 1, ttl: long.MaxValue, buffer, out _);
                    }
                    else
                    {
                        // The batch path: a group's candidates found first, read later (the other threads' writes and
                        // evictions meanwhile make some stale), and this user read through another user's candidate too.
                        int inGroup = op % group.Length; // odd here: 1, 3, .., 15
                        if (inGroup == 1)
                        {
                            for (int g = 0; g < group.Length; g++)
                            {
                                group[g] = rng.Next(keySpace);
                            }

                            tier.Prefetch(group, candidates);
                        }

                        user = (inGroup & 2) == 0 ? group[inGroup] : user; // the candidate's own user, or another
                        hit = tier.TryReadFrom(candidates[inGroup], user, now: 1, ttl: long.MaxValue, buffer, out _);
                    }

                    if (hit)
                    {
                        Interlocked.Increment(ref hits);
                        if (!IsConsistent(buffer, user))
                        {
                            Interlocked.Increment(ref bad);
                        }
                    }
                }

                if (tier.Count > bound)
                {
                    Interlocked.Increment(ref overCapacity);
                }

                if (maxBytes is long max && (writeNo & 63) == 0 && tier.AllocatedBytes > max)
                {
                    Interlocked.Increment(ref overBytes);
                }
            }
        })));

        Assert.Equal(0, bad);
        Assert.Equal(0, overCapacity);
        Assert.Equal(0, overBytes);
        Assert.InRange(tier.Count, 1, bound);
        Assert.True(hits > 1000, $"only {hits} hits in {reads} reads: the test did not exercise reads");
        Assert.True(tier.Evictions > 1000, $"only {tier.Evictions} evictions in {writes} writes");
        int found = 0;
        for (long u = 0; u < keySpace; u++)
        {
            var v = new float[dims];
            if (tier.TryRead(u, 1, long.MaxValue, v, out _))
            {
                Assert.True(IsConsistent(v, u));
                found++;
            }
        }

        Assert.Equal(tier.Count, found); // every entry counted is reachable through the index, and no more
        if ((long)capacity * (dims * sizeof(float) + SlotPage.HeaderBytes) >= SlabTier<LruOrder, Float32Codec>.MinHugePageTierBytes && HugePages.Supported)
        {
            Assert.True(tier.GetStatistics().HugePageBytes > 0, "the large case ran without huge pages advised");
        }
    }

    /// <summary>
    /// The hard-limit timer fires on the thread that moves the clock while calls start, end and are reused on another
    /// (<see cref="DelegateCall"/>: the timer stays armed across calls). No call's token may be cancelled before its own
    /// limit: not by the limit of a call before it, and not by a cancellation that a reused call carried over.
    /// </summary>
    [Fact]
    public async Task The_hard_limit_timer_fired_from_another_thread_never_cancels_a_call_before_its_own_limit()
    {
        var hardTimeout = TimeSpan.FromSeconds(1);
        using var f = new CacheFixture(m => { m.Inference.RunInline = true; m.Inference.HardTimeout = hardTimeout; m.Inference.CircuitBreaker.Enabled = false; });
        long submittedAt = 0, early = 0;
        f.Tower.Whole = (batch, ct) =>
        {
            // The call started at or after submittedAt: a token cancelled less than a limit after it was cancelled early.
            bool cancelled = ct.IsCancellationRequested;
            if (cancelled && f.Clock.GetElapsedTime(Volatile.Read(ref submittedAt)) < hardTimeout)
            {
                Interlocked.Increment(ref early);
            }

            Thread.SpinWait(200); // the call runs while the clock moves
            if (!cancelled && ct.IsCancellationRequested && f.Clock.GetElapsedTime(Volatile.Read(ref submittedAt)) < hardTimeout)
            {
                Interlocked.Increment(ref early);
            }

            TestTower.Fill(batch.GetRow(0).Span, batch.UserIds.Span[0], 0);
            return ValueTask.CompletedTask;
        };

        int callsLeft = 1;
        var clock = Task.Run(() =>
        {
            while (Volatile.Read(ref callsLeft) > 0)
            {
                f.Clock.Advance(hardTimeout / 50); // the timer's callback runs here; small steps, so few calls span a limit
                Thread.Yield();
            }
        });
        var vector = new float[4];
        for (long user = 1; user <= CacheCallsPerCaller; user++)
        {
            Volatile.Write(ref submittedAt, f.Clock.GetTimestamp());
            await f.Cache.GetAsync(CacheFixture.Model, user, vector);
        }

        Volatile.Write(ref callsLeft, 0);
        await clock;

        Assert.Equal(CacheCallsPerCaller, f.Tower.CallCount);
        Assert.Equal(0, Interlocked.Read(ref early));
    }

    [Theory]
    [InlineData("Lru")]
    [InlineData("Fifo")]
    [InlineData("Sieve")]
    [InlineData("MemoryCache")]
    [InlineData("Lru", true)]
    public async Task Eight_callers_through_the_public_api_only_ever_get_their_own_vector(string eviction, bool runInline = false)
    {
        using var f = new CacheFixture(m =>
        {
            m.Inference.RunInline = runInline;
            m.Direct.Capacity = 50;
            m.Direct.Eviction = Enum.Parse<EvictionStrategy>(eviction);
            m.Failover.Capacity = 200;
            m.Failover.Eviction = Enum.Parse<EvictionStrategy>(eviction);
        }, dimensions: 16);
        f.Tower.PerUser = (user, batch, i, _) =>
        {
            if (user % 13 == 0)
            {
                batch.Fail(i); // some users go to failover/fallback
            }
            else
            {
                TestTower.Fill(batch.GetRow(i).Span, user, 0);
            }

            return ValueTask.CompletedTask;
        };
        long bad = 0, served = 0, overCapacity = 0;
        int callersLeft = 1; // the clock moves until every caller is done

        // One thread moves time so entries expire and are rewritten while others read.
        var clock = Task.Run(() =>
        {
            while (Volatile.Read(ref callersLeft) > 0)
            {
                f.Clock.Advance(TimeSpan.FromSeconds(7));
                Thread.Yield();
            }
        });
        var callers = Enumerable.Range(0, 8).Select(t => Task.Run(async () =>
        {
            var rng = new Random(t);
            var vector = new float[16];
            var users = new long[8];
            var vectors = new float[8 * 16];
            var results = new EmbeddingResult[8];
            for (int call = 0; call < CacheCallsPerCaller; call++)
            {
                if (rng.Next(2) == 0)
                {
                    long user = rng.Next(1, 2000);
                    var r = await f.Cache.GetAsync(CacheFixture.Model, user, vector);
                    Check(r, vector, user);
                }
                else
                {
                    for (int i = 0; i < users.Length; i++)
                    {
                        users[i] = rng.Next(1, 2000);
                    }

                    await f.Cache.GetManyAsync(CacheFixture.Model, users, vectors, results);
                    for (int i = 0; i < users.Length; i++)
                    {
                        Check(results[i], vectors.AsSpan(i * 16, 16), users[i]);
                    }
                }

                if (f.Cache.GetEntryCount(CacheFixture.Model, TierKind.Direct) > 50 || f.Cache.GetEntryCount(CacheFixture.Model, TierKind.Failover) > 200)
                {
                    Interlocked.Increment(ref overCapacity);
                }
            }
        })).ToArray();

        try
        {
            await Task.WhenAll(callers);
        }
        finally
        {
            Volatile.Write(ref callersLeft, 0); // stops the clock thread, also when a caller failed
        }

        await clock;

        Assert.Equal(0, bad);
        Assert.Equal(0, overCapacity);
        Assert.True(served > 1000, $"only {served} vectors served");

        // Calls whose callers left at their deadline finish on their own; then nothing may be left in the scheduler.
        await Poll.Until(
            () => f.Cache.GetInFlight(CacheFixture.Model) == 0 && f.Cache.GetPendingUsers(CacheFixture.Model) == 0,
            "users were left pending or calls in flight");

        void Check(EmbeddingResult r, ReadOnlySpan<float> v, long user)
        {
            if (r.HasVector)
            {
                Interlocked.Increment(ref served);
                if (!TestTower.BelongsTo(v, user) || user % 13 == 0 && r.Source == EmbeddingSource.Fresh)
                {
                    Interlocked.Increment(ref bad);
                }
            }
            else if (r.Source != EmbeddingSource.Fallback || v.ContainsAnyExcept(0f))
            {
                Interlocked.Increment(ref bad);
            }
        }
    }

    [Fact]
    public async Task A_rollout_under_load_serves_each_user_only_its_own_vector_of_the_version_it_names_and_nothing_removed()
    {
        // Two versions at once: warming v2 in the background, users switching to v2 by hash as time passes, callers on
        // both, and removals of every version racing all of it, through the public API on the thread pool.
        const int dimensions = 8, users = 600;
        var start = new DateTimeOffset(2026, 12, 3, 12, 0, 0, TimeSpan.Zero);
        var clock = new FakeTimeProvider(start);
        var model = CacheFixture.DefaultModel(dimensions);
        model.Version = "v1";
        model.Direct.Ttl = TimeSpan.FromMinutes(10);
        model.Direct.Capacity = 400;
        model.Failover.Capacity = 1000;
        model.Inference.MaxConcurrency = 4;
        model.Inference.MaxBatchSize = 8;
        model.Inference.CircuitBreaker.Enabled = false; // removed users fail on purpose
        // Each caller moves the shared clock a second per call: with the fixture's 50 ms deadline any request in flight
        // while another caller moved it missed its deadline and was served v1 from failover, so how many v2 vectors were
        // served depended on how the thread pool interleaved the callers with the towers (184 of 6,918 once, on a
        // loaded machine). A minute is 60 other calls: the failure paths stay those of removed users, failing on purpose.
        model.Inference.Timeout = TimeSpan.FromMinutes(1);
        model.Rollout = new RolloutOptions { NextVersion = "v2", SwitchAt = start, SwitchOver = TimeSpan.FromHours(10) };
        var removed = new ConcurrentDictionary<long, bool>(); // true once the removal has returned
        var tower = new HammerTower(removed);
        TestThread.LeaveSynchronizationContext();
        await using var cache = EmbeddingCache.Create(
            new ERCacheOptions { Models = { [CacheFixture.Model] = model } }, new Dictionary<string, IEmbeddingInference> { [CacheFixture.Model] = tower },
            new EmbeddingCacheServices { TimeProvider = clock, Dispatcher = InferenceDispatcher.ThreadPool });
        using var metrics = new CacheMetrics(cache.Meter);
        long bad = 0, served = 0, servedV2 = 0, servedAfterRemoval = 0;

        var callers = Enumerable.Range(0, 6).Select(t => Task.Run(async () =>
        {
            var rng = new Random(t);
            var vector = new float[dimensions];
            var batch = new long[6];
            var vectors = new float[batch.Length * dimensions];
            var results = new EmbeddingResult[batch.Length];
            var removedBefore = new bool[batch.Length];
            for (int call = 0; call < CacheCallsPerCaller / 5; call++)
            {
                clock.Advance(TimeSpan.FromSeconds(1)); // ~5 h in all: the switch reaches about half the users
                if (rng.Next(2) == 0)
                {
                    long user = rng.Next(1, users);
                    bool wasRemoved = removed.GetValueOrDefault(user);
                    Check(await cache.GetAsync(CacheFixture.Model, user, vector), vector, user, wasRemoved);
                }
                else
                {
                    for (int i = 0; i < batch.Length; i++)
                    {
                        batch[i] = rng.Next(1, users);
                        removedBefore[i] = removed.GetValueOrDefault(batch[i]);
                    }

                    await cache.GetManyAsync(CacheFixture.Model, batch, vectors, results);
                    for (int i = 0; i < batch.Length; i++)
                    {
                        Check(results[i], vectors.AsSpan(i * dimensions, dimensions), batch[i], removedBefore[i]);
                    }
                }
            }
        })).ToArray();
        var remover = Task.Run(async () =>
        {
            for (long user = 10; user < users; user += 10)
            {
                removed[user] = false; // the tower fails the user from now on, so nothing can bring it back
                await cache.RemoveAsync(user);
                removed[user] = true;
                await Task.Yield();
            }
        });

        await Task.WhenAll([.. callers, remover]);
        await Poll.Until(() => cache.GetInFlight(CacheFixture.Model) == 0 && cache.GetPendingUsers(CacheFixture.Model) == 0, "users were left pending or calls in flight");

        Assert.Equal(0, bad);
        Assert.Equal(0, servedAfterRemoval);
        Assert.True(served > 5000, $"only {served} vectors served");
        Assert.True(servedV2 > 500 && servedV2 < served, $"{servedV2} of {served} vectors served were v2: the switch did not run");
        Assert.True(metrics.Sum(ERCacheDiagnostics.BackgroundInferences, ("kind", "rollout")) > 0, "nothing was warmed for v2");

        void Check(EmbeddingResult r, ReadOnlySpan<float> v, long user, bool removedBeforeTheRequest)
        {
            if (r.HasVector)
            {
                Interlocked.Increment(ref served);
                int version = r.ModelVersion == "v2" ? 2 : 1;
                Interlocked.Add(ref servedV2, version - 1);
                if (!TestTower.BelongsTo(v, user) || TestTower.GenerationOf(v) != version)
                {
                    Interlocked.Increment(ref bad); // another user's vector, or the other version's
                }

                if (removedBeforeTheRequest)
                {
                    Interlocked.Increment(ref servedAfterRemoval);
                }
            }
            else if (r.Source != EmbeddingSource.Fallback || v.ContainsAnyExcept(0f))
            {
                Interlocked.Increment(ref bad);
            }
        }
    }

    [Fact]
    public async Task Three_hosts_under_load_never_serve_a_removed_or_superseded_vector_once_the_operation_is_applied()
    {
        // Three caches share one in-memory store and its invalidation channel (delivered before publishing returns);
        // callers hammer all three while removals and pushes run on random hosts. Once a removal has returned, no host
        // may serve the user again (the towers fail removed users, so nothing can bring them back). Pushed users are
        // never inferred (the towers fail them): their only vectors are pushes, generation 100, 101, … in order, each
        // with a later stamp; once a push is flushed (written, then announced and applied), no host may serve an older
        // one.
        const int dimensions = 8, users = 400, pushes = 600;
        var clock = new FakeTimeProvider(new DateTimeOffset(2026, 12, 3, 12, 0, 0, TimeSpan.Zero));
        var store = new InMemoryRegionalStore(clock);
        var removed = new ConcurrentDictionary<long, bool>(); // true once the removal has returned
        var latestPush = new int[users]; // the generation every host must serve at least, once applied
        static bool IsPushed(long user) => user % 7 == 3;
        TestThread.LeaveSynchronizationContext();
        var hosts = Enumerable.Range(0, 3).Select(_ =>
        {
            var model = CacheFixture.DefaultModel(dimensions);
            model.Inference.CircuitBreaker.Enabled = false; // removed and pushed users fail on purpose
            return EmbeddingCache.Create(
                new ERCacheOptions { Models = { [CacheFixture.Model] = model } }, new Dictionary<string, IEmbeddingInference> { [CacheFixture.Model] = new HammerTower(removed, IsPushed) },
                new EmbeddingCacheServices { TimeProvider = clock, Dispatcher = InferenceDispatcher.ThreadPool, RegionalStore = store });
        }).ToArray();
        foreach (var host in hosts)
        {
            await host.WhenReadyAsync();
        }

        long bad = 0, served = 0, servedAfterRemoval = 0, superseded = 0, servedPushes = 0;
        var callers = Enumerable.Range(0, 6).Select(t => Task.Run(async () =>
        {
            var rng = new Random(t);
            var vector = new float[dimensions];
            for (int call = 0; call < CacheCallsPerCaller / 5; call++)
            {
                var host = hosts[rng.Next(hosts.Length)];
                long user = rng.Next(1, users);
                bool wasRemoved = removed.GetValueOrDefault(user);
                int atLeast = Volatile.Read(ref latestPush[user]);
                var result = await host.GetAsync(CacheFixture.Model, user, vector);
                if (result.HasVector)
                {
                    Interlocked.Increment(ref served);
                    Interlocked.Add(ref bad, TestTower.BelongsTo(vector, user) ? 0 : 1);
                    Interlocked.Add(ref servedAfterRemoval, wasRemoved ? 1 : 0);
                    if (IsPushed(user))
                    {
                        Interlocked.Increment(ref servedPushes);
                        Interlocked.Add(ref superseded, TestTower.GenerationOf(vector) < atLeast ? 1 : 0);
                    }
                }

                if (call % 50 == 0)
                {
                    await host.FlushRegionalWritesAsync(); // share vectors through the store
                    clock.Advance(TimeSpan.FromMilliseconds(100));
                }
            }
        })).ToArray();
        var remover = Task.Run(async () =>
        {
            var rng = new Random(99);
            for (long user = 7; user < users; user += 7)
            {
                removed[user] = false; // the towers fail the user from now on
                await hosts[rng.Next(hosts.Length)].RemoveAsync(user);
                removed[user] = true;
                await Task.Yield();
            }
        });
        var pusher = Task.Run(async () =>
        {
            var rng = new Random(98);
            var vector = new float[dimensions];
            var generations = new int[users];
            for (int push = 0; push < pushes; push++)
            {
                long user = 3 + (7 * rng.Next(users / 7));
                int generation = generations[user] = Math.Max(100, generations[user] + 1);
                TestTower.Fill(vector, user, generation);
                clock.Advance(TimeSpan.FromMilliseconds(1)); // each push of a user is stamped later than the one before
                var host = hosts[rng.Next(hosts.Length)];
                host.SetVector(CacheFixture.Model, user, vector);
                await host.FlushRegionalWritesAsync(); // written, then announced: applied on every host when it returns
                Volatile.Write(ref latestPush[user], generation);
                await Task.Yield();
            }
        });

        await Task.WhenAll([.. callers, remover, pusher]);
        foreach (var host in hosts)
        {
            await host.DisposeAsync();
        }

        Assert.Equal(0, bad);
        Assert.Equal(0, servedAfterRemoval);
        Assert.Equal(0, superseded);
        Assert.True(served > 5000, $"only {served} vectors served");
        Assert.True(servedPushes > 500, $"only {servedPushes} pushed vectors served");
        Assert.True(store.Published >= users / 7 - 1 + pushes, $"{store.Published} messages published");
    }

    /// <summary>Writes user u's vector with generation 1 for v1 and 2 for v2, after a yield (so calls interleave);
    /// fails users whose removal has begun, and those never to be inferred.</summary>
    private sealed class HammerTower(ConcurrentDictionary<long, bool> removed, Func<long, bool>? neverInferred = null) : IEmbeddingInference
    {
        public async ValueTask InferAsync(InferenceBatch batch, CancellationToken cancellationToken)
        {
            await Task.Yield();
            int generation = batch.Version == "v2" ? 2 : 1;
            for (int i = 0; i < batch.Count; i++)
            {
                long user = batch.UserIds.Span[i];
                if (removed.ContainsKey(user) || neverInferred?.Invoke(user) == true)
                {
                    batch.Fail(i);
                }
                else
                {
                    TestTower.Fill(batch.GetRow(i).Span, user, generation);
                }
            }
        }
    }

    [Fact]
    public void A_restore_beside_request_writes_removals_and_reads_keeps_every_newer_write_and_serves_nothing_removed()
    {
        // Each round: a restore writes users 0..Restored-1 (stamp 1, generation 1) into a fresh tier while a request
        // thread writes every third of them and users past them (stamp 2, generation 2), another removes every third
        // (noted first, as a removal during a restore is), and a reader checks every hit.
        const int Restored = 4096, Extra = 2048, Rounds = 12, WritePasses = 6, Dims = 16;
        using var metrics = new ERCacheMetrics(null);
        for (int round = 0; round < Rounds; round++)
        {
            var tier = (SlabTier<LruOrder, Float32Codec>)TierHelper.Create("Lru", Restored + Extra, Dims, metrics);
            var removed = new ConcurrentDictionary<long, bool>();
            var removalDone = new bool[Restored];
            long violations = 0;
            Action restore = () =>
            {
                var row = new float[Dims];
                for (long u = 0; u < Restored; u++)
                {
                    TestTower.Fill(row, u, 1);
                    tier.Restore(u, row, writtenAt: 1, ttl: long.MaxValue, removed.ContainsKey);
                }
            };
            Action writer = () =>
            {
                var row = new float[Dims];
                for (int pass = 0; pass < WritePasses; pass++)
                {
                    foreach (long u in Enumerable.Range(0, Restored / 3 + 1).Select(i => 3L * i).Concat(Enumerable.Range(Restored, Extra).Select(i => (long)i)))
                    {
                        TestTower.Fill(row, u, 2);
                        tier.Write(u, row, writtenAt: 2);
                    }
                }
            };
            Action remover = () =>
            {
                for (long u = 1; u < Restored; u += 3)
                {
                    removed.TryAdd(u, true);
                    tier.Remove(u);
                    Volatile.Write(ref removalDone[u], true);
                }
            };
            int seed = round;
            Action<Func<bool>> reader = working =>
            {
                var rng = new Random(seed);
                var row = new float[Dims];
                var expected = new float[Dims];
                while (working())
                {
                    long u = rng.Next(Restored + Extra);
                    bool removedBefore = u < Restored && Volatile.Read(ref removalDone[u]);
                    if (tier.TryRead(u, now: 2, ttl: long.MaxValue, row, out long writtenAt))
                    {
                        TestTower.Fill(expected, u, (int)writtenAt);
                        if (removedBefore || !row.AsSpan().SequenceEqual(expected))
                        {
                            Interlocked.Increment(ref violations);
                        }
                    }
                }
            };
            CheckedThread.RunAll([restore, writer, remover], reader);

            Assert.Equal(0, Interlocked.Read(ref violations));
            Assert.Equal(0, tier.RequestWritesWaiting);
            var read = new float[Dims];
            var want = new float[Dims];
            for (long u = 0; u < Restored + Extra; u++)
            {
                bool found = tier.TryRead(u, now: 2, ttl: long.MaxValue, read, out long writtenAt);
                long expectedStamp = u >= Restored || u % 3 == 0 ? 2 : u % 3 == 2 ? 1 : 0; // 0: removed
                Assert.True(found == (expectedStamp != 0), $"round {round}, user {u}: found {found}");
                if (found)
                {
                    Assert.Equal(expectedStamp, writtenAt); // a restore never overwrote a newer write
                    TestTower.Fill(want, u, (int)writtenAt);
                    Assert.Equal(want, read);
                }
            }
        }
    }

    [Fact]
    public void A_removal_log_appended_from_four_threads_while_it_is_rewritten_keeps_every_record()
    {
        const int Threads = 4, PerThread = 5_000, Rewrites = 40;
        string directory = Path.Combine(Path.GetTempPath(), $"ercache-removal-hammer-{Guid.NewGuid():N}");
        try
        {
            using var log = new Tiers.Snapshots.RemovalLog(Path.Combine(directory, "m.removals.ercache-log"));
            var appenders = Enumerable.Range(0, Threads).Select(t => (Action)(() =>
            {
                for (int i = 0; i < PerThread; i++)
                {
                    log.Append((t * PerThread) + i, 1_000 + i);
                }
            }));
            CheckedThread.RunAll(appenders, appending =>
            {
                for (int i = 0; i < Rewrites || appending(); i++)
                {
                    log.DropBefore(0); // drops nothing: every record must survive each rewrite
                }
            });

            var records = Tiers.Snapshots.RemovalLog.Read(log.Path)!;
            Assert.Equal(Threads * PerThread, records.Users);
            for (int t = 0; t < Threads; t++)
            {
                for (int i = 0; i < PerThread; i++)
                {
                    Assert.True(records.Covers((t * PerThread) + i, 1_000 + i), $"user {(t * PerThread) + i}");
                    Assert.False(records.Covers((t * PerThread) + i, 1_001 + i));
                }
            }
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Hit_buffer_hammered_by_readers_while_a_drainer_runs_only_yields_recorded_slots(bool prefetching)
    {
        var buffer = new HitBuffer();
        long added = 0, drained = 0, foreign = 0;
        var sink = new CountingSink(() => Interlocked.Increment(ref drained), slot =>
        {
            if (slot is < 0 or >= 1000)
            {
                Interlocked.Increment(ref foreign);
            }
        });
        var readers = Enumerable.Range(0, 6).Select(t => (Action)(() =>
        {
            var rng = new Random(t);
            for (int hit = 0; hit < HitsPerReader; hit++)
            {
                buffer.Add(rng.Next(1000));
                Interlocked.Increment(ref added);
            }
        }));
        CheckedThread.RunAll(readers, reading =>
        {
            while (reading())
            {
                Drain(buffer, ref sink, prefetching);
            }
        });
        Drain(buffer, ref sink, prefetching);

        Assert.Equal(0, foreign);
        Assert.InRange(drained, 1, added);
    }

    [Fact]
    public void Recent_moves_read_by_six_threads_while_the_writer_moves_them_stay_within_their_window()
    {
        // The writer moves slots 0..capacity-1 in order, then moves a few again,
        // while readers ask about random slots. Afterwards exactly the last window of moves reads as recent.
        const int capacity = 100_000, window = capacity / 4;
        var recent = new RecentMoves(capacity);
        long asked = 0, errors = 0;
        int writing = 1;
        using var started = new CountdownEvent(6);
        var readers = Enumerable.Range(0, 6).Select(t => new Thread(() =>
        {
            var rng = new Random(t);
            started.Signal();
            while (Volatile.Read(ref writing) == 1)
            {
                try
                {
                    recent.IsRecent(rng.Next(capacity));
                    Interlocked.Increment(ref asked);
                }
                catch (Exception)
                {
                    Interlocked.Increment(ref errors);
                }
            }
        })).ToArray();
        foreach (var r in readers)
        {
            r.Start();
        }

        started.Wait(); // the moves happen while every reader asks
        for (int slot = 0; slot < capacity; slot++)
        {
            recent.Moved(slot);
        }

        for (int slot = 0; slot < 10; slot++)
        {
            recent.Moved(slot); // moved again: recent, though written first
        }

        Volatile.Write(ref writing, 0);
        foreach (var r in readers)
        {
            r.Join();
        }

        Assert.Equal(0, errors);
        Assert.True(asked > 0, "no reader asked while the writer ran");
        Assert.Equal(capacity * sizeof(int), recent.AllocatedBytes);
        int recentCount = Enumerable.Range(0, capacity).Count(recent.IsRecent);
        Assert.Equal(window, recentCount);
        Assert.True(recent.IsRecent(0) && recent.IsRecent(capacity - 1) && !recent.IsRecent(capacity - window - 1 + 10));
    }

    private static void Drain(HitBuffer buffer, ref CountingSink sink, bool prefetching)
    {
        if (prefetching)
        {
            buffer.DrainPrefetching(ref sink);
        }
        else
        {
            buffer.Drain(ref sink);
        }
    }

    /// <summary>Counts the hits drained; every slot it is handed, to prefetch or to apply, goes to <c>check</c>.</summary>
    private struct CountingSink(Action onHit, Action<int> check) : IHitSink
    {
        public readonly void Prefetch(int slot) => check(slot);

        public readonly void PrefetchNeighbours(int slot) => check(slot);

        public readonly void Hit(int slot)
        {
            check(slot);
            onHit();
        }
    }
}
