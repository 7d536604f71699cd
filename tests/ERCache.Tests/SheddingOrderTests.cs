using ERCache.Testing;
using ERCache.Tests.Infrastructure;

namespace ERCache.Tests;

/// <summary>DESIGN §2 rule 12: an overloaded model infers the users who would fall back before those who have a failover
/// vector, and among those the oldest vector first; a full queue makes room for a more urgent user.</summary>
public sealed class SheddingOrderTests
{
    private static CacheFixture Fixture(ManualInferenceDispatcher dispatcher, int maxQueue) => new(
        m =>
        {
            m.Inference.MaxConcurrency = 1;
            m.Inference.MaxBatchSize = 1;
            m.Inference.MaxQueue = maxQueue;
            m.Inference.Timeout = TimeSpan.FromSeconds(1);
        },
        dispatcher: dispatcher);

    /// <summary>Gives users 1, 2, 3 failover vectors written a minute apart (1 the oldest), then lets every direct entry expire.</summary>
    private static async Task WarmAsync(CacheFixture f, ManualInferenceDispatcher dispatcher)
    {
        foreach (long user in new long[] { 1, 2, 3 })
        {
            var call = f.GetAsync(user);
            dispatcher.RunAll();
            Assert.Equal(EmbeddingSource.Fresh, (await call).Result.Source);
            f.Clock.Advance(TimeSpan.FromMinutes(1));
        }

        f.Clock.Advance(TimeSpan.FromMinutes(1)); // the direct TTL is 1 min: all three now miss, with failover vectors
    }

    [Fact]
    public async Task Queued_users_without_a_failover_vector_go_first_then_the_oldest_vectors()
    {
        var dispatcher = new ManualInferenceDispatcher();
        using var f = Fixture(dispatcher, maxQueue: 16);
        await WarmAsync(f, dispatcher);
        int warmCalls = f.Tower.CallCount;

        // User 100 takes the only slot; the rest queue behind it in arrival order 3, 2, 1, 4, 5.
        var calls = new[] { 100L, 3, 2, 1, 4, 5 }.Select(u => f.GetAsync(u)).ToArray();
        Assert.Equal(5, f.Cache.GetQueuedUsers(CacheFixture.Model));
        dispatcher.RunAll();
        await Task.WhenAll(calls);

        var order = f.Tower.Calls.Skip(warmCalls).Select(c => c.Single()).ToArray();
        Assert.Equal(new long[] { 100, 4, 5, 1, 2, 3 }, order);
        Assert.All(calls, c => Assert.Equal(EmbeddingSource.Fresh, c.Result.Result.Source));
    }

    [Fact]
    public async Task A_full_queue_sheds_the_user_with_the_youngest_failover_vector_to_queue_one_who_would_fall_back()
    {
        var dispatcher = new ManualInferenceDispatcher();
        using var f = Fixture(dispatcher, maxQueue: 3);
        await WarmAsync(f, dispatcher);
        int warmCalls = f.Tower.CallCount;

        var first = f.GetAsync(100);      // takes the slot
        var queued = new[] { 3L, 2, 1 }.Select(u => f.GetAsync(u)).ToArray(); // the queue is full
        Assert.All(queued, c => Assert.False(c.IsCompleted));

        var four = f.GetAsync(4);         // no failover vector: user 3 (youngest vector) makes room
        var three = await queued[0].WaitAsync(TimeSpan.FromSeconds(10)); // answered at once, on the pool: no clock moved
        Assert.Equal((EmbeddingSource.Failover, InferenceFailureCause.Overload), (three.Result.Source, three.Result.FailureCause));
        Assert.True(TestTower.BelongsTo(three.Vector, 3));

        var five = f.GetAsync(5);         // then user 2
        var two = await queued[1].WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal((EmbeddingSource.Failover, InferenceFailureCause.Overload), (two.Result.Source, two.Result.FailureCause));

        var six = f.GetAsync(6);          // the queue holds 4, 5 (no vector) and 1: user 1's vector is the one to serve
        var one = await queued[2].WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(EmbeddingSource.Failover, one.Result.Source);
        var seven = f.GetAsync(7);        // full of users who would fall back: an equal one is shed, not a queued one
        var shed = (await seven.WaitAsync(TimeSpan.FromSeconds(10))).Result;
        Assert.Equal((EmbeddingSource.Fallback, InferenceFailureCause.Overload), (shed.Source, shed.FailureCause));
        Assert.False(four.IsCompleted || five.IsCompleted || six.IsCompleted);

        dispatcher.RunAll();
        foreach (var call in new[] { first, four, five, six })
        {
            Assert.Equal(EmbeddingSource.Fresh, (await call).Result.Source);
        }

        Assert.Equal(new long[] { 100, 4, 5, 6 }, f.Tower.Calls.Skip(warmCalls).Select(c => c.Single()).ToArray());
        Assert.Equal(4, f.Metrics.Sum("ercache.inference.shed"));
    }
}
