using ERCache.Inference;
using ERCache.Testing;
using ERCache.Tests.Infrastructure;
using Microsoft.Extensions.Time.Testing;

namespace ERCache.Tests;

/// <summary>
/// A request's only miss starts as a batch of its own without passing through the queue when nothing is queued, no
/// batch window gathers misses and a slot is free (InferenceScheduler.TryStartAlone). It must start exactly when the
/// queue would have started it: never ahead of users already queued, never inside a batch window.
/// </summary>
public sealed class LoneMissTests
{
    private static ERCacheOptions Options(int maxConcurrency)
    {
        var model = CacheFixture.DefaultModel(4);
        model.Inference.MaxConcurrency = maxConcurrency;
        model.Inference.MaxBatchSize = 1;
        return new ERCacheOptions { Models = { [CacheFixture.Model] = model } };
    }

    [Fact]
    public async Task A_lone_miss_that_finds_a_free_slot_does_not_pass_a_user_already_queued()
    {
        var tower = new TestTower();
        var dispatcher = new ManualInferenceDispatcher();
        await using var host = new ReloadableCache(Options(maxConcurrency: 1), name => name == CacheFixture.Model ? tower : null, dispatcher: dispatcher);
        var cache = host.Cache;

        var first = cache.GetAsync(CacheFixture.Model, 100, new float[4]); // takes the only slot
        var queued = cache.GetAsync(CacheFixture.Model, 1, new float[4]);  // waits for it
        Assert.Equal(1, cache.GetQueuedUsers(CacheFixture.Model));

        // A reload frees a second slot; user 1 is still queued until something starts the queue.
        host.Reload(Options(maxConcurrency: 2));
        var lone = cache.GetAsync(CacheFixture.Model, 2, new float[4]);
        dispatcher.RunAll();
        await Task.WhenAll(first.AsTask(), queued.AsTask(), lone.AsTask());

        Assert.Equal(new long[] { 100, 1, 2 }, tower.Calls.Select(c => c.Single()));
    }

    [Fact]
    public async Task A_lone_miss_waits_for_the_batch_window_and_shares_the_batch()
    {
        var dispatcher = new ManualInferenceDispatcher();
        using var f = new CacheFixture(m => { m.Inference.BatchWindow = TimeSpan.FromMilliseconds(5); m.Inference.MaxBatchSize = 4; }, dispatcher: dispatcher);

        var one = f.GetAsync(1);
        Assert.Equal(0, dispatcher.Pending); // not started alone: the window gathers
        var two = f.GetAsync(2);
        f.Clock.Advance(TimeSpan.FromMilliseconds(5));
        dispatcher.RunAll();
        await Task.WhenAll(one, two);

        Assert.Equal(new long[] { 1, 2 }, Assert.Single(f.Tower.Calls));
    }

    [Fact]
    public async Task A_lone_miss_whose_deadline_passed_during_its_regional_lookup_is_shed_not_started()
    {
        var clock = new FakeTimeProvider();
        var store = new GatedRegionalStore(clock);
        var dispatcher = new ManualInferenceDispatcher();
        var tower = new TestTower();
        var model = CacheFixture.DefaultModel(4);
        model.Inference.Timeout = TimeSpan.FromMilliseconds(5);
        var options = new ERCacheOptions { Models = { [CacheFixture.Model] = model }, Regional = { Timeout = TimeSpan.FromMilliseconds(50) } };
        TestThread.LeaveSynchronizationContext(); // the cache reacts inside each step (see TestThread)
        await using var cache = EmbeddingCache.Create(
            options, new Dictionary<string, IEmbeddingInference> { [CacheFixture.Model] = tower },
            new EmbeddingCacheServices { TimeProvider = clock, Dispatcher = dispatcher, RegionalStore = store });

        store.HoldReads();
        var pending = cache.GetAsync(CacheFixture.Model, 3, new float[4]);
        Assert.True(await store.NextHeldReadAsync());
        clock.Advance(TimeSpan.FromMilliseconds(10)); // past the request's deadline while its lookup is in flight
        store.ReleaseReads();
        var result = await pending.AsTask().WaitAsync(TimeSpan.FromSeconds(10)); // a guard against a hang
        dispatcher.RunAll();

        Assert.Equal((EmbeddingSource.Fallback, InferenceFailureCause.Overload), (result.Source, result.FailureCause));
        Assert.Equal(0, tower.CallCount); // nobody waits for it any more: the model's capacity is not spent on it
    }

    [Fact]
    public async Task A_lone_miss_on_an_idle_model_starts_at_once_and_queues_nothing()
    {
        var dispatcher = new ManualInferenceDispatcher();
        using var f = new CacheFixture(dispatcher: dispatcher);

        var one = f.GetAsync(1);
        Assert.Equal((1, 0, 1), (dispatcher.Pending, f.Cache.GetQueuedUsers(CacheFixture.Model), f.Cache.ResolveState(CacheFixture.Model).Scheduler.PendingUsers));
        var joined = f.GetAsync(1); // still pending: a second caller joins it rather than start another call
        dispatcher.RunAll();

        Assert.Equal(EmbeddingSource.Fresh, (await one).Result.Source);
        Assert.Equal(EmbeddingSource.Fresh, (await joined).Result.Source);
        Assert.Equal(1, f.Tower.CallCount);
        Assert.Equal(0, f.Cache.ResolveState(CacheFixture.Model).Scheduler.PendingUsers);
    }
}
