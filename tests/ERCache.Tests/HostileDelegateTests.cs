using ERCache.Internal;
using System.Diagnostics;
using ERCache.Inference;
using ERCache.Tests.Infrastructure;

namespace ERCache.Tests;

/// <summary>The SLA promises when the model misbehaves: it hangs past its hard limit, or blocks its thread.</summary>
public sealed class HostileDelegateTests
{
    [Fact]
    public async Task One_request_with_more_misses_than_MaxQueue_is_served_in_turn_on_an_idle_model()
    {
        using var f = new CacheFixture(m => { m.Inference.MaxQueue = 32; m.Inference.MaxBatchSize = 16; });
        var users = Enumerable.Range(1, 100).Select(u => (long)u).ToArray();
        var vectors = new float[users.Length * 4];
        var results = new EmbeddingResult[users.Length];

        await f.Cache.GetManyAsync(CacheFixture.Model, users, vectors, results).AsTask().WaitAsync(TimeSpan.FromSeconds(10));

        Assert.All(results, r => Assert.Equal(EmbeddingSource.Fresh, r.Source));
        Assert.All(users, (u, i) => Assert.True(TestTower.BelongsTo(vectors.AsSpan(i * 4, 4), u)));
        Assert.Equal(0, f.Metrics.Sum("ercache.inference.shed"));
        Assert.Equal(7, f.Tower.CallCount); // ceil(100 / 16)
        Assert.Equal(0, f.Cache.GetPendingUsers(CacheFixture.Model));
    }

    [Fact]
    public async Task A_request_that_finds_the_queue_full_of_others_work_is_shed_and_a_large_one_gets_Overload_for_what_its_deadline_left_unsubmitted()
    {
        using var f = new CacheFixture(m => { m.Inference.MaxQueue = 32; m.Inference.MaxBatchSize = 16; m.Inference.MaxConcurrency = 1; });
        var gate = new TaskCompletionSource();
        f.Tower.Gate = gate.Task;
        var large = Enumerable.Range(1, 100).Select(u => (long)u).ToArray();
        var largeResults = new EmbeddingResult[large.Length];
        var largeCall = f.Cache.GetManyAsync(CacheFixture.Model, large, new float[large.Length * 4], largeResults).AsTask();
        Assert.Equal(1, f.Tower.CallCount); // 16 in the call, 16 queued, 68 held back by the request itself

        var filler = f.Cache.GetManyAsync(CacheFixture.Model, Enumerable.Range(500, 16).Select(u => (long)u).ToArray(), new float[16 * 4], new EmbeddingResult[16]).AsTask();
        var other = await f.Cache.GetAsync(CacheFixture.Model, 1000, new float[4]).AsTask().WaitAsync(TimeSpan.FromSeconds(10)); // the queue is full of others' users
        f.Clock.Advance(TimeSpan.FromMilliseconds(50)); // every deadline
        await Task.WhenAll(largeCall, filler).WaitAsync(TimeSpan.FromSeconds(10));
        gate.SetResult();
        Assert.Equal(0, f.Cache.GetInFlight(CacheFixture.Model));

        Assert.Equal((EmbeddingSource.Fallback, InferenceFailureCause.Overload), (other.Source, other.FailureCause));
        Assert.Equal(16, largeResults.Count(r => r.FailureCause == InferenceFailureCause.Timeout)); // in the hanging call
        Assert.Equal(84, largeResults.Count(r => r.FailureCause == InferenceFailureCause.Overload)); // queued or never submitted
        Assert.Equal(1, f.Tower.CallCount); // queued users past their deadline are not sent once the call returns
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_call_abandoned_at_its_hard_limit_counts_against_MaxConcurrency_until_the_delegate_returns(bool breaker)
    {
        using var f = new CacheFixture(m =>
        {
            m.Inference.MaxConcurrency = 2;
            m.Inference.MaxBatchSize = 1;
            m.Inference.Timeout = TimeSpan.FromMilliseconds(50);
            m.Inference.HardTimeout = TimeSpan.FromMilliseconds(100);
            m.Inference.CircuitBreaker.Enabled = breaker;
        });
        int running = 0, maxRunning = 0;
        var hang = new TaskCompletionSource();
        f.Tower.Whole = async (batch, _) =>
        {
            AtomicMax.Raise(ref maxRunning, Interlocked.Increment(ref running));
            try
            {
                await hang.Task.ConfigureAwait(false); // ignores its token: keeps running past the hard limit
                TestTower.Fill(batch.GetRow(0).Span, batch.UserIds.Span[0], 0);
            }
            finally
            {
                Interlocked.Decrement(ref running);
            }
        };

        var first = new[] { 1L, 2L }.Select(u => f.Cache.GetAsync(CacheFixture.Model, u, new float[4]).AsTask()).ToArray();
        Assert.Equal(2, Volatile.Read(ref running));
        f.Clock.Advance(TimeSpan.FromMilliseconds(100)); // both callers answered, both calls abandoned at the hard limit
        var abandoned = await Task.WhenAll(first).WaitAsync(TimeSpan.FromSeconds(10));

        // The abandoned calls still run: nothing else may start, however many users miss meanwhile.
        var later = Enumerable.Range(3, 20).Select(u => f.Cache.GetAsync(CacheFixture.Model, u, new float[4]).AsTask()).ToArray();
        Assert.Equal(2, f.Cache.GetInFlight(CacheFixture.Model));
        f.Clock.Advance(TimeSpan.FromMilliseconds(50));
        var refused = await Task.WhenAll(later).WaitAsync(TimeSpan.FromSeconds(10));

        hang.SetResult(); // the model recovers: its slots free, and a new miss is served
        await f.Cache.WhenIdleAsync(CacheFixture.Model).WaitAsync(TimeSpan.FromSeconds(10)); // the released calls finish through their continuations
        Assert.Equal(0, f.Cache.GetInFlight(CacheFixture.Model));
        var (recovered, vector) = await f.GetAsync(100).WaitAsync(TimeSpan.FromSeconds(10));

        Assert.All(abandoned, r => Assert.Equal(InferenceFailureCause.Timeout, r.FailureCause));
        Assert.All(refused, r => Assert.Equal(InferenceFailureCause.Overload, r.FailureCause));
        Assert.Equal(2, maxRunning);
        Assert.Equal(2 + 1, f.Tower.CallCount);
        Assert.Equal(EmbeddingSource.Fresh, recovered.Source);
        Assert.True(TestTower.BelongsTo(vector, 100));
    }
}
