using ERCache.Tests.Infrastructure;

namespace ERCache.Tests;

/// <summary>One test (or more) per rule of DESIGN.md §2, on a manual clock.</summary>
public sealed class RequestPathTests
{
    [Fact]
    public async Task First_request_runs_inference_and_returns_a_fresh_vector()
    {
        using var f = new CacheFixture();
        var (result, vector) = await f.GetAsync(7);

        Assert.Equal(EmbeddingSource.Fresh, result.Source);
        Assert.Equal(TimeSpan.Zero, result.Age);
        Assert.Equal("v1", result.ModelVersion);
        Assert.Equal(InferenceFailureCause.None, result.FailureCause);
        Assert.True(result.HasVector);
        Assert.True(TestTower.BelongsTo(vector, 7));
        Assert.Single(f.Tower.Calls);
        Assert.Equal([7L], f.Tower.Calls[0]);
    }

    [Fact]
    public async Task Rule1_direct_hit_younger_than_ttl_skips_inference_and_reports_age()
    {
        using var f = new CacheFixture();
        await f.GetAsync(7);
        f.Tower.Generation = 5;
        f.Clock.Advance(TimeSpan.FromSeconds(59.999));

        var (result, vector) = await f.GetAsync(7);

        Assert.Equal(EmbeddingSource.Direct, result.Source);
        Assert.Equal(TimeSpan.FromSeconds(59.999), result.Age);
        Assert.Equal(0, TestTower.GenerationOf(vector)); // the cached vector, not a new one
        Assert.True(TestTower.BelongsTo(vector, 7));
        Assert.Single(f.Tower.Calls);
    }

    [Fact]
    public async Task Rule1_direct_hit_changes_nothing()
    {
        using var f = new CacheFixture();
        await f.GetAsync(7);
        f.Clock.Advance(TimeSpan.FromSeconds(30));
        await f.GetAsync(7); // hit at 30 s must not restamp the entry
        f.Clock.Advance(TimeSpan.FromSeconds(30));

        var (result, _) = await f.GetAsync(7);

        Assert.Equal(EmbeddingSource.Fresh, result.Source); // 60 s after the write: expired
        Assert.Equal(2, f.Tower.CallCount);
    }

    [Fact]
    public async Task Rule1_age_exactly_at_ttl_is_expired()
    {
        using var f = new CacheFixture();
        await f.GetAsync(7);
        f.Tower.Generation = 1;
        f.Clock.Advance(TimeSpan.FromMinutes(1));

        var (result, vector) = await f.GetAsync(7);

        Assert.Equal(EmbeddingSource.Fresh, result.Source);
        Assert.Equal(1, TestTower.GenerationOf(vector));
        Assert.Equal(2, f.Tower.CallCount);
    }

    [Fact]
    public async Task Rule3_fresh_vector_is_written_to_both_tiers_stamped_now()
    {
        using var f = new CacheFixture();
        f.Clock.Advance(TimeSpan.FromSeconds(10));
        await f.GetAsync(7);

        Assert.Equal(1, f.Cache.GetEntryCount(CacheFixture.Model, TierKind.Direct));
        Assert.Equal(1, f.Cache.GetEntryCount(CacheFixture.Model, TierKind.Failover));

        f.Clock.Advance(TimeSpan.FromMinutes(5)); // direct expired, failover valid
        f.Tower.Whole = (_, _) => throw new InvalidOperationException("model down");
        var (result, vector) = await f.GetAsync(7);

        Assert.Equal(EmbeddingSource.Failover, result.Source);
        Assert.Equal(TimeSpan.FromMinutes(5), result.Age);
        Assert.Equal(InferenceFailureCause.Error, result.FailureCause);
        Assert.True(TestTower.BelongsTo(vector, 7));
    }

    [Theory]
    [InlineData("nan")]
    [InlineData("+inf")]
    [InlineData("-inf")]
    [InlineData("short")]
    [InlineData("long")]
    [InlineData("unwritten")]
    public async Task Rule3_invalid_vector_counts_as_failed_inference_and_is_never_cached(string defect)
    {
        using var f = new CacheFixture();
        f.Tower.PerUser = (user, batch, i, _) =>
        {
            var good = new float[batch.Dimensions];
            TestTower.Fill(good, user, 0);
            switch (defect)
            {
                case "nan": good[2] = float.NaN; batch.SetRow(i, good); break;
                case "+inf": good[3] = float.PositiveInfinity; batch.SetRow(i, good); break;
                case "-inf": good[0] = float.NegativeInfinity; batch.SetRow(i, good); break;
                case "short": batch.SetRow(i, good.AsSpan(0, batch.Dimensions - 1)); break;
                case "long": batch.SetRow(i, new float[batch.Dimensions + 1]); break;
                case "unwritten": break;
            }

            return ValueTask.CompletedTask;
        };

        var (result, vector) = await f.GetAsync(7);

        Assert.Equal(EmbeddingSource.Fallback, result.Source);
        Assert.Equal(InferenceFailureCause.InvalidVector, result.FailureCause);
        Assert.False(result.HasVector);
        Assert.All(vector, v => Assert.Equal(0f, v));
        Assert.Equal(0, f.Cache.GetEntryCount(CacheFixture.Model, TierKind.Direct));
        Assert.Equal(0, f.Cache.GetEntryCount(CacheFixture.Model, TierKind.Failover));
        Assert.Equal(1, f.Metrics.Sum("ercache.inference.failures", ("model", "ctr"), ("cause", "invalid_vector")));
    }

    [Fact]
    public async Task Rule3_invalid_vector_is_answered_from_failover_when_it_has_an_entry()
    {
        using var f = new CacheFixture();
        await f.GetAsync(7);
        f.Clock.Advance(TimeSpan.FromMinutes(2));
        f.Tower.PerUser = (_, batch, i, _) => { batch.GetRow(i).Span.Fill(float.NaN); return ValueTask.CompletedTask; };

        var (result, vector) = await f.GetAsync(7);

        Assert.Equal(EmbeddingSource.Failover, result.Source);
        Assert.Equal(InferenceFailureCause.InvalidVector, result.FailureCause);
        Assert.Equal(0, TestTower.GenerationOf(vector));
        Assert.True(TestTower.BelongsTo(vector, 7));
    }

    [Fact]
    public async Task Rule4_failover_hit_needs_an_entry_younger_than_the_failover_ttl()
    {
        using var f = new CacheFixture();
        await f.GetAsync(7);
        f.Tower.Whole = (_, _) => throw new InvalidOperationException("down");

        f.Clock.Advance(TimeSpan.FromHours(1) - TimeSpan.FromTicks(1));
        var (young, _) = await f.GetAsync(7);
        f.Clock.Advance(TimeSpan.FromTicks(1));
        var (atTtl, vector) = await f.GetAsync(7);

        Assert.Equal(EmbeddingSource.Failover, young.Source);
        Assert.Equal(TimeSpan.FromHours(1) - TimeSpan.FromTicks(1), young.Age);
        Assert.Equal(EmbeddingSource.Fallback, atTtl.Source);
        Assert.Equal(InferenceFailureCause.Error, atTtl.FailureCause);
        Assert.All(vector, v => Assert.Equal(0f, v));
    }

    [Fact]
    public async Task Rule4_timeout_is_a_failure_answered_at_the_deadline()
    {
        using var f = new CacheFixture();
        await f.GetAsync(7);
        f.Clock.Advance(TimeSpan.FromMinutes(2));
        var started = new TaskCompletionSource();
        f.Tower.Whole = async (_, _) =>
        {
            started.TrySetResult();
            await Task.Delay(Timeout.Infinite, CancellationToken.None); // hangs, ignoring cancellation
        };

        var vector = new float[4];
        var pending = f.Cache.GetAsync(CacheFixture.Model, 7, vector).AsTask();
        await started.Task.WaitAsync(TimeSpan.FromSeconds(10));
        f.Clock.Advance(TimeSpan.FromMilliseconds(49));
        Assert.False(pending.IsCompleted);
        f.Clock.Advance(TimeSpan.FromMilliseconds(1));
        var result = await pending.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Equal(EmbeddingSource.Failover, result.Source);
        Assert.Equal(InferenceFailureCause.Timeout, result.FailureCause);
        Assert.Equal(TimeSpan.FromMinutes(2) + TimeSpan.FromMilliseconds(50), result.Age);
        Assert.True(TestTower.BelongsTo(vector, 7));
        Assert.Equal(1, f.Metrics.Sum("ercache.inference.failures", ("cause", "timeout")));
    }

    [Fact]
    public async Task Rule5_fallback_zeroes_the_destination_and_says_there_is_no_vector()
    {
        using var f = new CacheFixture();
        f.Tower.Whole = (_, _) => throw new InvalidOperationException("down");
        var vector = new float[] { 42, 42, 42, 42 };

        var result = await f.Cache.GetAsync(CacheFixture.Model, 7, vector);

        Assert.Equal(EmbeddingSource.Fallback, result.Source);
        Assert.Equal(InferenceFailureCause.Error, result.FailureCause);
        Assert.False(result.HasVector);
        Assert.Equal(new float[4], vector);
    }

    [Fact]
    public async Task Rule5_fallback_serves_the_configured_default_vector()
    {
        using var f = new CacheFixture(m => m.DefaultVector = [0.5f, -1, 2, 3]);
        f.Tower.Whole = (_, _) => throw new InvalidOperationException("down");

        var (result, vector) = await f.GetAsync(7);

        Assert.Equal(EmbeddingSource.Fallback, result.Source);
        Assert.True(result.HasVector);
        Assert.Equal([0.5f, -1, 2, 3], vector);
    }

    [Fact]
    public async Task Rule5_a_delegate_that_throws_synchronously_is_a_failure_not_an_exception()
    {
        using var f = new CacheFixture();
        var tower = new ThrowingInference();
        TestThread.LeaveSynchronizationContext(); // the cache reacts inside each step (see TestThread)
        using var cache = EmbeddingCache.Create(f.Options, new Dictionary<string, Inference.IEmbeddingInference> { ["ctr"] = tower }, new EmbeddingCacheServices { TimeProvider = f.Clock });

        var result = await cache.GetAsync("ctr", 1, new float[4]);

        Assert.Equal(EmbeddingSource.Fallback, result.Source);
        Assert.Equal(InferenceFailureCause.Error, result.FailureCause);
    }

    [Fact]
    public async Task Rule6_a_failover_served_vector_is_not_written_back_to_the_direct_tier()
    {
        using var f = new CacheFixture();
        await f.GetAsync(7);                         // written at t = 0
        f.Clock.Advance(TimeSpan.FromMinutes(2));
        f.Tower.Whole = (_, _) => throw new InvalidOperationException("down");
        var (failover, _) = await f.GetAsync(7);     // served from failover at t = 2 min
        f.Tower.Whole = null;
        f.Tower.Generation = 9;

        var (next, vector) = await f.GetAsync(7);    // direct must still be expired

        Assert.Equal(EmbeddingSource.Failover, failover.Source);
        Assert.Equal(EmbeddingSource.Fresh, next.Source);
        Assert.Equal(9, TestTower.GenerationOf(vector));
        Assert.Equal(3, f.Tower.CallCount);
    }

    [Fact]
    public async Task Rule6_failover_age_keeps_counting_from_the_original_write()
    {
        using var f = new CacheFixture();
        await f.GetAsync(7);
        f.Tower.Whole = (_, _) => throw new InvalidOperationException("down");
        f.Clock.Advance(TimeSpan.FromMinutes(2));
        await f.GetAsync(7);
        f.Clock.Advance(TimeSpan.FromMinutes(3));

        var (result, _) = await f.GetAsync(7);

        Assert.Equal(EmbeddingSource.Failover, result.Source);
        Assert.Equal(TimeSpan.FromMinutes(5), result.Age);
    }

    [Fact]
    public async Task Keys_are_compared_in_full_so_users_with_equal_hash_codes_never_share_a_vector()
    {
        using var f = new CacheFixture();
        const long a = 0x1_0000_0001; // long.GetHashCode folds the halves: both hash to 0
        const long b = 0;
        Assert.Equal(a.GetHashCode(), b.GetHashCode());
        f.Tower.PerUser = (user, batch, i, _) =>
        {
            batch.GetRow(i).Span.Fill(user == a ? 1f : 2f);
            return ValueTask.CompletedTask;
        };

        await f.GetAsync(a);
        await f.GetAsync(b);
        var (ra, va) = await f.GetAsync(a);
        var (rb, vb) = await f.GetAsync(b);

        Assert.Equal(EmbeddingSource.Direct, ra.Source);
        Assert.Equal(EmbeddingSource.Direct, rb.Source);
        Assert.All(va, v => Assert.Equal(1f, v));
        Assert.All(vb, v => Assert.Equal(2f, v));
    }

    [Fact]
    public async Task A_user_failed_with_Fail_is_answered_alone_while_the_rest_of_the_batch_is_fresh()
    {
        using var f = new CacheFixture();
        f.Tower.PerUser = (user, batch, i, _) =>
        {
            if (user == 2)
            {
                batch.Fail(i);
            }
            else
            {
                TestTower.Fill(batch.GetRow(i).Span, user, 0);
            }

            return ValueTask.CompletedTask;
        };
        long[] users = [1, 2, 3];
        var vectors = new float[3 * 4];
        var results = new EmbeddingResult[3];

        await f.Cache.GetManyAsync(CacheFixture.Model, users, vectors, results);

        Assert.Equal([EmbeddingSource.Fresh, EmbeddingSource.Fallback, EmbeddingSource.Fresh], results.Select(r => r.Source));
        Assert.Equal(InferenceFailureCause.Error, results[1].FailureCause);
        Assert.True(TestTower.BelongsTo(vectors.AsSpan(0, 4), 1));
        Assert.True(TestTower.BelongsTo(vectors.AsSpan(8, 4), 3));
        Assert.Equal(2, f.Cache.GetEntryCount(CacheFixture.Model, TierKind.Direct));
    }

    [Fact]
    public async Task Models_are_independent()
    {
        using var f = new CacheFixture(new Dictionary<string, Action<ModelOptions>?>
        {
            ["a"] = m => m.Dimensions = 3,
            ["b"] = m => { m.Dimensions = 8; m.Direct.Ttl = TimeSpan.FromSeconds(10); },
        });
        await f.GetAsync(1, "a");
        await f.GetAsync(1, "b");
        f.Clock.Advance(TimeSpan.FromSeconds(10));

        var (ra, va) = await f.GetAsync(1, "a");
        var (rb, vb) = await f.GetAsync(1, "b");

        Assert.Equal(EmbeddingSource.Direct, ra.Source);
        Assert.Equal(EmbeddingSource.Fresh, rb.Source);
        Assert.Equal(3, va.Length);
        Assert.Equal(8, vb.Length);
        Assert.Single(f.Towers["a"].Calls);
        Assert.Equal(2, f.Towers["b"].CallCount);
    }

    [Fact]
    public async Task A_disabled_direct_tier_sends_every_request_to_inference()
    {
        using var f = new CacheFixture(m => m.Direct.Enabled = false);
        await f.GetAsync(7);
        var (result, _) = await f.GetAsync(7);

        Assert.Equal(EmbeddingSource.Fresh, result.Source);
        Assert.Equal(2, f.Tower.CallCount);
        Assert.Equal(0, f.Cache.GetEntryCount(CacheFixture.Model, TierKind.Direct));
        Assert.Equal(1, f.Cache.GetEntryCount(CacheFixture.Model, TierKind.Failover));
    }

    [Fact]
    public async Task Misuse_throws_with_a_message_that_names_the_problem()
    {
        using var f = new CacheFixture();

        var unknown = await Assert.ThrowsAsync<ArgumentException>(() => f.Cache.GetAsync("cvr", 1, new float[4]).AsTask());
        var length = await Assert.ThrowsAsync<ArgumentException>(() => f.Cache.GetAsync("ctr", 1, new float[5]).AsTask());
        var many = await Assert.ThrowsAsync<ArgumentException>(() => f.Cache.GetManyAsync("ctr", new long[2], new float[8], new EmbeddingResult[1]).AsTask());

        Assert.Equal("Unknown model 'cvr'. Configured models: ctr. (Parameter 'model')", unknown.Message);
        Assert.Equal("The destination has 5 floats but model 'ctr' needs 1 × Dimensions (4) = 4. (Parameter 'destination')", length.Message);
        Assert.Contains("results buffer has 1 elements but 2 users", many.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Caller_cancellation_ends_the_wait_with_OperationCanceledException(bool batch)
    {
        using var f = new CacheFixture();
        var started = new TaskCompletionSource();
        f.Tower.Whole = async (_, ct) =>
        {
            started.TrySetResult();
            await Task.Delay(Timeout.Infinite, ct);
        };
        using var cts = new CancellationTokenSource();

        var pending = batch
            ? f.Cache.GetManyAsync(CacheFixture.Model, new long[] { 7, 8 }, new float[8], new EmbeddingResult[2], cts.Token).AsTask()
            : f.Cache.GetAsync(CacheFixture.Model, 7, new float[4], cts.Token).AsTask();
        await started.Task.WaitAsync(TimeSpan.FromSeconds(10));
        await cts.CancelAsync();

        // Cancelled, not faulted, and with the caller's token, as an async method's own task would be.
        var thrown = await Assert.ThrowsAnyAsync<OperationCanceledException>(() => pending.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.True(pending.IsCanceled);
        Assert.Equal(cts.Token, thrown.CancellationToken);
        Assert.Equal(0, f.Metrics.Sum("ercache.inference.failures"));
        Assert.Equal(0, f.Metrics.Sum("ercache.requests"));
    }

    [Fact]
    public async Task An_already_cancelled_token_throws_before_any_work()
    {
        using var f = new CacheFixture();
        using var cts = new CancellationTokenSource();
        await cts.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => f.Cache.GetAsync(CacheFixture.Model, 7, new float[4], cts.Token).AsTask());
        Assert.Equal(0, f.Tower.CallCount);
    }

    private sealed class ThrowingInference : Inference.IEmbeddingInference
    {
        public ValueTask InferAsync(Inference.InferenceBatch batch, CancellationToken cancellationToken) =>
            throw new InvalidOperationException("thrown before any await");
    }
}

public sealed class HitAllocationTests
{
    [Theory]
    [InlineData("Lru", "Float32")]
    [InlineData("Sieve", "Float16")]
    [InlineData("Fifo", "Int8")]
    public async Task Direct_hits_allocate_nothing_single_or_batched(string eviction, string format)
    {
        using var f = new CacheFixture(m => { m.Direct.Eviction = Enum.Parse<EvictionStrategy>(eviction); m.Direct.Format = Enum.Parse<StorageFormat>(format); });
        f.Metrics.Dispose(); // a listening collector allocates per measurement; a service without one must not
        var users = Enumerable.Range(1, 64).Select(u => (long)u).ToArray();
        var vectors = new float[users.Length * 4];
        var results = new EmbeddingResult[users.Length];
        await f.Cache.GetManyAsync(CacheFixture.Model, users, vectors, results); // fills the direct tier
        var one = new float[4];
        for (int i = 0; i < 100; i++)
        {
            Hit(f, users, one, vectors, results); // warm up: JIT and tiering
        }

        // Up to three windows of 1,000 rounds: an allocation on the hit path shows in every window (at least 24 B a round),
        // while a one-off of the runtime on this thread does not repeat (seen once in CI under load: 4,896 B in one window,
        // never reproduced alone), so one clean window is the proof; every window is reported.
        var windows = new List<long>();
        for (int window = 0; window < 3 && (windows.Count == 0 || windows[^1] != 0); window++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 1000; i++)
            {
                Hit(f, users, one, vectors, results);
            }

            windows.Add(GC.GetAllocatedBytesForCurrentThread() - before);
        }

        Assert.True(windows[^1] == 0, $"bytes allocated by 1,000 rounds of hits, per window: {string.Join(", ", windows)}");
        Assert.All(results, r => Assert.Equal(EmbeddingSource.Direct, r.Source));
    }

    private static void Hit(CacheFixture f, long[] users, float[] one, float[] vectors, EmbeddingResult[] results)
    {
        var single = f.Cache.GetAsync(CacheFixture.Model, users[7], one);
        Assert.True(single.IsCompletedSuccessfully && single.Result.Source == EmbeddingSource.Direct);
        var batch = f.Cache.GetManyAsync(CacheFixture.Model, users, vectors, results);
        Assert.True(batch.IsCompletedSuccessfully);
    }

    [Fact]
    public void Tier_statistics_of_an_undefined_tier_kind_are_refused_not_another_tiers()
    {
        using var f = new CacheFixture();

        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => f.Cache.GetTierStatistics(CacheFixture.Model, (TierKind)2));

        Assert.Equal("tier", ex.ParamName);
        Assert.Equal(TierKind.Failover, f.Cache.GetTierStatistics(CacheFixture.Model, TierKind.Failover)!.Value.Kind);
    }
}
