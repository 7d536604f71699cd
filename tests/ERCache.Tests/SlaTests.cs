using ERCache.Internal;
using Microsoft.Extensions.Time.Testing;
using ERCache.Inference;
using ERCache.Testing;
using ERCache.Tests.Infrastructure;

namespace ERCache.Tests;

/// <summary>Inference under an SLA: deadlines, coalescing, batching across callers, shedding, the breaker.</summary>
public sealed class SlaTests
{
    [Fact]
    public async Task Hundred_concurrent_callers_for_one_user_share_one_inference()
    {
        using var f = new CacheFixture();
        var release = new TaskCompletionSource();
        f.Tower.Gate = release.Task;
        f.Tower.Generation = 3;

        var vectors = Enumerable.Range(0, 100).Select(_ => new float[4]).ToArray();
        var calls = vectors.Select(v => f.Cache.GetAsync(CacheFixture.Model, 42, v).AsTask()).ToArray();
        Assert.Equal(1, f.Tower.CallCount);
        release.SetResult();
        var results = await Task.WhenAll(calls);

        Assert.Equal(1, f.Tower.CallCount);
        Assert.All(results, r => Assert.Equal(EmbeddingSource.Fresh, r.Source));
        Assert.All(vectors, v => Assert.Equal(vectors[0], v));
        Assert.Equal(3, TestTower.GenerationOf(vectors[0]));
        Assert.Equal(99, f.Metrics.Sum("ercache.inference.coalesced", ("model", "ctr")));
    }

    [Fact]
    public async Task A_late_success_refreshes_both_tiers_and_never_reaches_the_buffer_of_the_caller_who_left()
    {
        using var f = new CacheFixture(m => m.Inference.HardTimeout = TimeSpan.FromSeconds(5));
        var release = new TaskCompletionSource();
        f.Tower.Gate = release.Task;
        f.Tower.Generation = 7;
        var buffer = new float[4];

        var pending = f.Cache.GetAsync(CacheFixture.Model, 5, buffer).AsTask();
        Assert.Equal(1, f.Tower.CallCount);
        f.Clock.Advance(TimeSpan.FromMilliseconds(60));
        var late = await pending.WaitAsync(TimeSpan.FromSeconds(10));
        var answered = buffer.ToArray();
        release.SetResult(); // the row arrives now, after its only caller left
        Assert.Equal(1, f.Cache.GetEntryCount(CacheFixture.Model, TierKind.Failover));
        await f.Cache.WhenIdleAsync(CacheFixture.Model).WaitAsync(TimeSpan.FromSeconds(10));
        var (next, vector) = await f.GetAsync(5);

        Assert.Equal((EmbeddingSource.Fallback, InferenceFailureCause.Timeout), (late.Source, late.FailureCause));
        Assert.Equal(new float[4], answered);
        Assert.Equal(answered, buffer); // untouched after GetAsync returned (the row is delivered to a caller only while it waits)
        Assert.Equal(1, f.Cache.GetEntryCount(CacheFixture.Model, TierKind.Direct));
        Assert.Equal(EmbeddingSource.Direct, next.Source);
        Assert.Equal(7, TestTower.GenerationOf(vector));
    }

    [Fact]
    public async Task A_late_success_is_not_written_when_WriteLateResults_is_off()
    {
        using var f = new CacheFixture(m => m.Inference.WriteLateResults = false);
        var release = new TaskCompletionSource();
        f.Tower.Gate = release.Task;
        f.Tower.Generation = 7;

        var pending = f.Cache.GetAsync(CacheFixture.Model, 5, new float[4]).AsTask();
        Assert.Equal(1, f.Tower.CallCount);
        f.Clock.Advance(TimeSpan.FromMilliseconds(60));
        await pending.WaitAsync(TimeSpan.FromSeconds(10));
        release.SetResult();
        Assert.Equal(0, f.Cache.GetInFlight(CacheFixture.Model));

        Assert.Equal(0, f.Cache.GetEntryCount(CacheFixture.Model, TierKind.Direct));
        Assert.Equal(0, f.Cache.GetEntryCount(CacheFixture.Model, TierKind.Failover));
    }

    [Fact]
    public async Task A_late_failure_changes_nothing()
    {
        using var f = new CacheFixture();
        await f.GetAsync(5);
        f.Clock.Advance(TimeSpan.FromMinutes(2));
        var release = new TaskCompletionSource();
        f.Tower.Whole = async (_, _) =>
        {
            await release.Task.ConfigureAwait(false);
            throw new InvalidOperationException("late failure");
        };

        var pending = f.Cache.GetAsync(CacheFixture.Model, 5, new float[4]).AsTask();
        Assert.Equal(2, f.Tower.CallCount);
        f.Clock.Advance(TimeSpan.FromMilliseconds(60));
        var result = await pending.WaitAsync(TimeSpan.FromSeconds(10));
        release.SetResult();
        Assert.Equal(0, f.Cache.GetInFlight(CacheFixture.Model));
        f.Tower.Whole = (_, _) => throw new InvalidOperationException("still down");
        var after = await f.Cache.GetAsync(CacheFixture.Model, 5, new float[4]);

        Assert.Equal(EmbeddingSource.Failover, result.Source);
        Assert.Equal(EmbeddingSource.Failover, after.Source);
        Assert.Equal(TimeSpan.FromMinutes(2) + TimeSpan.FromMilliseconds(60), after.Age); // the original entry, untouched
    }

    /// <summary>A cache whose breaker opens after four calls in 30 s of which half failed, for 5 s.</summary>
    private static CacheFixture WithBreaker() => new(m =>
        m.Inference.CircuitBreaker = new CircuitBreakerOptions
        {
            FailureRatio = 0.5, MinimumThroughput = 4, SamplingDuration = TimeSpan.FromSeconds(30), BreakDuration = TimeSpan.FromSeconds(5),
        });

    [Fact]
    public async Task The_breaker_opens_serves_failover_probes_and_closes()
    {
        using var f = WithBreaker();
        var users = Enumerable.Range(1, 10).Select(u => (long)u).ToArray();
        await f.Cache.GetManyAsync(CacheFixture.Model, users, new float[40], new EmbeddingResult[10]);
        f.Clock.Advance(TimeSpan.FromMinutes(2));
        f.Tower.Whole = (_, _) => throw new InvalidOperationException("down");

        for (int u = 1; u <= 4; u++)
        {
            var r = await f.Cache.GetAsync(CacheFixture.Model, u, new float[4]);
            Assert.Equal((EmbeddingSource.Failover, InferenceFailureCause.Error), (r.Source, r.FailureCause));
        }

        int callsWhenOpened = f.Tower.CallCount;
        f.Metrics.RecordObservables();
        var open = await f.Cache.GetAsync(CacheFixture.Model, 5, new float[4]);
        Assert.Equal((EmbeddingSource.Failover, InferenceFailureCause.CircuitOpen), (open.Source, open.FailureCause));
        Assert.Equal(callsWhenOpened, f.Tower.CallCount); // the delegate was not called
        Assert.Equal(1, f.Metrics.Matching("ercache.circuit.state", ("model", "ctr")).Last().Value);

        f.Clock.Advance(TimeSpan.FromSeconds(5)); // break over: the next call is a probe
        f.Tower.Whole = null;
        var probe = await f.Cache.GetAsync(CacheFixture.Model, 6, new float[4]);
        var after = await f.Cache.GetAsync(CacheFixture.Model, 7, new float[4]);
        f.Metrics.RecordObservables();

        Assert.Equal(EmbeddingSource.Fresh, probe.Source);
        Assert.Equal(EmbeddingSource.Fresh, after.Source);
        Assert.Equal(0, f.Metrics.Matching("ercache.circuit.state", ("model", "ctr")).Last().Value);
    }

    [Theory]
    [InlineData("NaN")]
    [InlineData("wrong length")]
    [InlineData("never written")]
    public async Task A_tower_returning_only_invalid_vectors_opens_the_breaker_and_a_good_probe_closes_it(string how)
    {
        using var f = WithBreaker();
        var users = Enumerable.Range(1, 10).Select(u => (long)u).ToArray();
        await f.Cache.GetManyAsync(CacheFixture.Model, users, new float[40], new EmbeddingResult[10]);
        f.Clock.Advance(TimeSpan.FromMinutes(2));
        f.Tower.Whole = (batch, _) =>
        {
            for (int i = 0; i < batch.Count; i++)
            {
                switch (how)
                {
                    case "NaN": batch.SetRow(i, [1f, float.NaN, 3f, 4f]); break;
                    case "wrong length": batch.SetRow(i, [1f, 2f]); break;
                }
            }

            return ValueTask.CompletedTask;
        };

        for (int u = 1; u <= 4; u++)
        {
            var r = await f.Cache.GetAsync(CacheFixture.Model, u, new float[4]);
            Assert.Equal((EmbeddingSource.Failover, InferenceFailureCause.InvalidVector), (r.Source, r.FailureCause));
        }

        int callsWhenOpened = f.Tower.CallCount;
        var open = await f.Cache.GetAsync(CacheFixture.Model, 5, new float[4]);
        f.Metrics.RecordObservables();
        Assert.Equal((EmbeddingSource.Failover, InferenceFailureCause.CircuitOpen), (open.Source, open.FailureCause));
        Assert.Equal(callsWhenOpened, f.Tower.CallCount); // the broken tower is no longer called
        Assert.Equal(1, f.Metrics.Matching("ercache.circuit.state", ("model", "ctr")).Last().Value);

        f.Clock.Advance(TimeSpan.FromSeconds(5)); // break over: the next call is a probe
        f.Tower.Whole = null;
        var probe = await f.Cache.GetAsync(CacheFixture.Model, 6, new float[4]);
        f.Metrics.RecordObservables();

        Assert.Equal(EmbeddingSource.Fresh, probe.Source);
        Assert.Equal(0, f.Metrics.Matching("ercache.circuit.state", ("model", "ctr")).Last().Value);
    }

    [Fact]
    public async Task Calls_with_one_usable_row_among_invalid_ones_do_not_open_the_breaker()
    {
        using var f = WithBreaker();
        f.Tower.PerUser = (user, batch, i, _) =>
        {
            if (i == batch.Count - 1)
            {
                TestTower.Fill(batch.GetRow(i).Span, user, 1); // only the last row of each call is usable
            }
            else
            {
                batch.SetRow(i, [float.PositiveInfinity, 0f, 0f, 0f]);
            }

            return ValueTask.CompletedTask;
        };

        var results = new EmbeddingResult[4];
        for (int call = 0; call < 10; call++)
        {
            long[] users = [.. Enumerable.Range((call * 4) + 1, 4).Select(u => (long)u)];
            await f.Cache.GetManyAsync(CacheFixture.Model, users, new float[16], results);
            Assert.Equal(
                [InferenceFailureCause.InvalidVector, InferenceFailureCause.InvalidVector, InferenceFailureCause.InvalidVector, InferenceFailureCause.None],
                results.Select(r => r.FailureCause));
        }

        Assert.Equal(10, f.Tower.CallCount); // never rejected as CircuitOpen
        Assert.Equal(10, f.Cache.GetEntryCount(CacheFixture.Model, TierKind.Direct));
    }

    [Fact]
    public async Task Users_failed_one_by_one_do_not_open_the_breaker()
    {
        // The breaker counts calls that throw (or pass their hard limit); a tower that completes and marks some rows
        // failed is working. The replay harness relies on this when it leaves the breaker out.
        using var f = WithBreaker();
        f.Tower.PerUser = (_, batch, i, _) =>
        {
            batch.Fail(i);
            return ValueTask.CompletedTask;
        };

        var causes = new List<InferenceFailureCause>();
        for (int u = 1; u <= 20; u++)
        {
            causes.Add((await f.Cache.GetAsync(CacheFixture.Model, u, new float[4])).FailureCause);
        }

        Assert.All(causes, c => Assert.Equal(InferenceFailureCause.Error, c));
        Assert.Equal(20, f.Tower.CallCount); // every miss reached the delegate: never rejected as CircuitOpen
    }

    [Fact]
    public async Task Sixty_four_concurrent_single_user_misses_reach_the_delegate_in_four_calls_of_sixteen()
    {
        using var f = new CacheFixture(m =>
        {
            m.Inference.MaxBatchSize = 16;
            m.Inference.MaxConcurrency = 8;
            m.Inference.BatchWindow = TimeSpan.FromMilliseconds(5);
        });

        var calls = Enumerable.Range(0, 64).Select(u => f.Cache.GetAsync(CacheFixture.Model, u, new float[4]).AsTask()).ToArray();
        var results = await Task.WhenAll(calls).WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Equal(4, f.Tower.CallCount);
        Assert.All(f.Tower.Calls, c => Assert.Equal(16, c.Length));
        Assert.All(results, r => Assert.Equal(EmbeddingSource.Fresh, r.Source));
    }

    [Fact]
    public async Task The_batch_window_sends_a_partial_batch_when_it_elapses()
    {
        using var f = new CacheFixture(m =>
        {
            m.Inference.MaxBatchSize = 16;
            m.Inference.BatchWindow = TimeSpan.FromMilliseconds(5);
        });

        var calls = Enumerable.Range(0, 3).Select(u => f.Cache.GetAsync(CacheFixture.Model, u, new float[4]).AsTask()).ToArray();
        Assert.Equal(0, f.Tower.CallCount);
        f.Clock.Advance(TimeSpan.FromMilliseconds(5));
        await Task.WhenAll(calls).WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Equal([[0L, 1L, 2L]], f.Tower.Calls);
    }

    [Fact]
    public async Task A_caller_that_cancels_leaves_promptly_without_cancelling_the_shared_inference()
    {
        using var f = new CacheFixture();
        var release = new TaskCompletionSource();
        var tokenCancelled = false;
        f.Tower.Whole = async (batch, ct) =>
        {
            await release.Task.ConfigureAwait(false);
            tokenCancelled = ct.IsCancellationRequested;
            TestTower.Fill(batch.GetRow(0).Span, batch.UserIds.Span[0], 0);
        };
        using var cts = new CancellationTokenSource();

        var leaving = f.Cache.GetAsync(CacheFixture.Model, 9, new float[4], cts.Token).AsTask();
        var staying = f.Cache.GetAsync(CacheFixture.Model, 9, new float[4]).AsTask();
        Assert.Equal(1, f.Tower.CallCount);
        await cts.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => leaving.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.False(staying.IsCompleted);
        release.SetResult();
        var result = await staying.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(EmbeddingSource.Fresh, result.Source);
        Assert.False(tokenCancelled);
    }

    [Fact]
    public async Task A_hanging_delegate_is_answered_at_the_deadline_and_cancelled_at_the_hard_limit()
    {
        using var f = new CacheFixture(m => { m.Inference.Timeout = TimeSpan.FromMilliseconds(50); m.Inference.HardTimeout = TimeSpan.FromSeconds(1); });
        await f.GetAsync(1); // user 1 has a failover entry, user 2 has none
        f.Clock.Advance(TimeSpan.FromMinutes(2));
        var cancelled = new TaskCompletionSource();
        var hang = new TaskCompletionSource();
        f.Tower.Whole = async (_, ct) =>
        {
            ct.Register(() => cancelled.TrySetResult());
            await hang.Task.ConfigureAwait(false); // ignores its token
        };

        var one = f.Cache.GetAsync(CacheFixture.Model, 1, new float[4]).AsTask();
        var two = f.Cache.GetAsync(CacheFixture.Model, 2, new float[4]).AsTask();
        Assert.True(f.Tower.CallCount == 3); // the warm-up call and both hanging ones
        f.Clock.Advance(TimeSpan.FromMilliseconds(49));
        Assert.False(one.IsCompleted || two.IsCompleted);
        f.Clock.Advance(TimeSpan.FromMilliseconds(1));
        var r1 = await one.WaitAsync(TimeSpan.FromSeconds(10));
        var r2 = await two.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Equal((EmbeddingSource.Failover, InferenceFailureCause.Timeout), (r1.Source, r1.FailureCause));
        Assert.Equal((EmbeddingSource.Fallback, InferenceFailureCause.Timeout), (r2.Source, r2.FailureCause));
        Assert.False(cancelled.Task.IsCompleted); // still running between the deadline and the hard limit
        f.Clock.Advance(TimeSpan.FromMilliseconds(950));
        await cancelled.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(2, f.Cache.GetInFlight(CacheFixture.Model)); // abandoned, but still running: still counted
        hang.SetResult();
        await f.Cache.WhenIdleAsync(CacheFixture.Model).WaitAsync(TimeSpan.FromSeconds(10)); // the released calls finish through their continuations
        Assert.Equal(0, f.Cache.GetInFlight(CacheFixture.Model));
    }

    [Fact]
    public async Task Saturation_sheds_to_failover_with_cause_Overload_and_never_exceeds_MaxConcurrency()
    {
        using var f = new CacheFixture(m =>
        {
            m.Inference.MaxConcurrency = 2;
            m.Inference.MaxBatchSize = 1;
            m.Inference.MaxQueue = 3;
            m.Inference.HardTimeout = TimeSpan.FromSeconds(10);
        });
        var warm = new long[] { 10, 11, 12, 13, 14, 15, 16, 17 };
        foreach (long u in warm)
        {
            await f.GetAsync(u);
        }

        f.Clock.Advance(TimeSpan.FromMinutes(2)); // direct expired, failover valid
        int inFlight = 0, maxInFlight = 0;
        var release = new TaskCompletionSource();
        f.Tower.Whole = async (batch, _) =>
        {
            int now = Interlocked.Increment(ref inFlight);
            AtomicMax.Raise(ref maxInFlight, now);
            await release.Task.ConfigureAwait(false);
            Interlocked.Decrement(ref inFlight);
            TestTower.Fill(batch.GetRow(0).Span, batch.UserIds.Span[0], 1);
        };

        var calls = warm.Select(u => f.Cache.GetAsync(CacheFixture.Model, u, new float[4]).AsTask()).ToArray();
        Assert.True(f.Cache.GetInFlight(CacheFixture.Model) == 2 && Volatile.Read(ref inFlight) == 2);
        var shedAtOnce = calls.Where(c => c.IsCompleted).Select(c => c.Result).ToArray();
        f.Clock.Advance(TimeSpan.FromMilliseconds(50)); // the deadline: queued misses never started
        var results = await Task.WhenAll(calls).WaitAsync(TimeSpan.FromSeconds(10));
        release.SetResult();
        await f.Cache.WhenIdleAsync(CacheFixture.Model).WaitAsync(TimeSpan.FromSeconds(10)); // the released calls finish through their continuations
        Assert.Equal(0, f.Cache.GetInFlight(CacheFixture.Model));

        Assert.Equal(3, shedAtOnce.Length); // 8 misses: 2 in flight, 3 queued, 3 over MaxQueue
        Assert.All(shedAtOnce, r => Assert.Equal((EmbeddingSource.Failover, InferenceFailureCause.Overload), (r.Source, r.FailureCause)));
        Assert.Equal(6, results.Count(r => r.FailureCause == InferenceFailureCause.Overload));
        Assert.Equal(2, results.Count(r => r.FailureCause == InferenceFailureCause.Timeout));
        Assert.All(results, r => Assert.Equal(EmbeddingSource.Failover, r.Source));
        Assert.Equal(2, maxInFlight);
        Assert.Equal(6, f.Metrics.Sum("ercache.inference.failures", ("cause", "overload")));
        Assert.True(f.Metrics.Sum("ercache.inference.shed") >= 3);
        Assert.Equal(8 + 2, f.Tower.CallCount); // 8 warm-up calls, then only the 2 that got a slot
    }
}

/// <summary><c>RunInline</c>: where the delegate runs, and that deadlines still hold for asynchronous delegates.</summary>
public sealed class RunInlineTests
{
    [Fact]
    public async Task With_RunInline_a_synchronous_delegate_completes_the_call_before_GetAsync_returns()
    {
        using var f = new CacheFixture(m => m.Inference.RunInline = true);
        int callerThread = Environment.CurrentManagedThreadId, delegateThread = -1;
        f.Tower.PerUser = (user, batch, i, _) =>
        {
            delegateThread = Environment.CurrentManagedThreadId;
            TestTower.Fill(batch.GetRow(i).Span, user, 0);
            return ValueTask.CompletedTask;
        };

        var pending = f.Cache.GetAsync(CacheFixture.Model, 5, new float[4]);

        Assert.True(pending.IsCompletedSuccessfully);
        Assert.Equal(callerThread, delegateThread);
        Assert.Equal(EmbeddingSource.Fresh, (await pending).Source);
    }

    [Fact]
    public async Task An_asynchronous_delegate_run_inline_still_meets_the_callers_deadline()
    {
        using var f = new CacheFixture(m => { m.Inference.RunInline = true; m.Inference.Timeout = TimeSpan.FromMilliseconds(50); });
        var never = new TaskCompletionSource();
        f.Tower.Whole = async (_, _) => await never.Task.ConfigureAwait(false);

        var pending = f.Cache.GetAsync(CacheFixture.Model, 5, new float[4]).AsTask();
        Assert.False(pending.IsCompleted);
        f.Clock.Advance(TimeSpan.FromMilliseconds(50));
        var result = await pending;

        Assert.Equal((EmbeddingSource.Fallback, InferenceFailureCause.Timeout), (result.Source, result.FailureCause));
        never.SetResult();
    }
}
