using ERCache.Inference;
using ERCache.Testing;
using ERCache.Tests.Infrastructure;
using Microsoft.Extensions.Time.Testing;

namespace ERCache.Tests;

/// <summary>The dispatcher seam: delegate calls run where the dispatcher says, when it says.</summary>
public sealed class DispatcherTests
{
    [Fact]
    public async Task Batches_wait_in_a_manual_dispatcher_until_the_test_runs_them()
    {
        var clock = new FakeTimeProvider();
        var dispatcher = new ManualInferenceDispatcher();
        var tower = new TestTower();
        var model = CacheFixture.DefaultModel(4);
        model.Inference.MaxBatchSize = 2;
        var options = new ERCacheOptions { Models = { ["ctr"] = model } };
        TestThread.LeaveSynchronizationContext(); // the cache reacts inside each step (see TestThread)
        using var cache = EmbeddingCache.Create(options, new Dictionary<string, IEmbeddingInference> { ["ctr"] = tower }, new EmbeddingCacheServices { TimeProvider = clock, Dispatcher = dispatcher });

        long[] users = [1, 2, 3];
        var vectors = new float[users.Length * 4];
        var results = new EmbeddingResult[users.Length];
        var pending = cache.GetManyAsync("ctr", users, vectors, results).AsTask();

        Assert.False(pending.IsCompleted);
        Assert.Equal(2, dispatcher.Pending); // three misses, batches of two
        Assert.Equal(0, tower.CallCount);

        Assert.Equal(2, dispatcher.RunAll());
        await pending;

        Assert.Equal(2, tower.CallCount);
        Assert.All(results, r => Assert.Equal(EmbeddingSource.Fresh, r.Source));
        for (int i = 0; i < users.Length; i++)
        {
            Assert.True(TestTower.BelongsTo(vectors.AsSpan(i * 4, 4), users[i]));
        }
    }

    [Fact]
    public async Task Waiting_for_a_pending_call_completes_when_one_is_dispatched_and_honours_cancellation()
    {
        var dispatcher = new ManualInferenceDispatcher();
        var first = dispatcher.WhenPendingAsync();
        var second = dispatcher.WhenPendingAsync();
        using var cancel = new CancellationTokenSource();
        var cancelled = dispatcher.WhenPendingAsync(cancel.Token);
        Assert.False(first.IsCompleted);

        cancel.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled);
        Assert.False(first.IsCompleted); // one waiter's cancellation leaves the others waiting

        int ran = 0;
        dispatcher.Dispatch(_ => ran++, null);
        await first;
        await second;
        Assert.True(dispatcher.WhenPendingAsync().IsCompleted); // a call is waiting: at once

        Assert.Equal(1, dispatcher.RunAll());
        Assert.Equal(1, ran);
        Assert.False(dispatcher.WhenPendingAsync().IsCompleted); // none waits again
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(true, true)]
    public async Task The_cache_finishes_a_request_on_the_completing_thread_and_only_a_simulation_continues_its_caller_there(bool simulation, bool batch)
    {
        // The cache's own part of a request (the tier reads, the copies, the leases) runs on the thread that completes
        // the tower's call, so the caller is answered before that thread moves on and without a hop through the pool.
        // The caller's own continuation must never run there (it would hold an inference thread), except under a
        // single-threaded simulation (the replay harness), which needs exactly that.
        var clock = new FakeTimeProvider();
        var release = new TaskCompletionSource();
        var tower = new TestTower { Gate = release.Task };
        var options = new ERCacheOptions { Models = { ["ctr"] = CacheFixture.DefaultModel(4) } };
        TestThread.LeaveSynchronizationContext();
        using var cache = EmbeddingCache.Create(
            options, new Dictionary<string, IEmbeddingInference> { ["ctr"] = tower },
            new EmbeddingCacheServices { TimeProvider = clock, Dispatcher = new RunNowDispatcher(simulation) });
        var results = new EmbeddingResult[2];
        var vectors = new float[8];
        var single = batch ? null : cache.GetAsync("ctr", 7, vectors.AsMemory(0, 4)).AsTask();
        var pending = single ?? cache.GetManyAsync("ctr", new long[] { 7, 8 }, vectors, results).AsTask();
        Assert.False(pending.IsCompleted);

        // Which thread continues the caller: a synchronous continuation runs on it.
        int answeredOn = 0;
        var answered = pending.ContinueWith(_ => answeredOn = Environment.CurrentManagedThreadId, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        var completer = CheckedThread.Start(() => release.SetResult()); // the tower's call completes on this thread
        completer.Join();
        Assert.True(pending.IsCompleted); // answered by the completing thread, before it returned
        await answered;

        Assert.Equal(simulation, answeredOn == completer.ManagedThreadId);
        await pending;
        if (single is not null)
        {
            results[0] = await single;
        }

        Assert.All(results.Take(batch ? 2 : 1), r => Assert.Equal(EmbeddingSource.Fresh, r.Source));
        Assert.Equal(TestTower.Expected(7, 0, 0), vectors[0]);
        Assert.Equal(batch ? TestTower.Expected(8, 0, 0) : 0, vectors[4]);
    }

    /// <summary>A dispatcher's thread is offered its next call once the call's rows are written and before its callers
    /// are answered: a caller that misses again at once then finds that thread idle (DispatcherTestsSoak has the
    /// dedicated dispatcher's side). Only the call's own state is offered.</summary>
    [Fact]
    public async Task The_scheduler_offers_a_calls_thread_after_its_rows_are_written_and_before_its_callers_are_answered()
    {
        var clock = new FakeTimeProvider();
        var release = new TaskCompletionSource();
        var tower = new TestTower { Gate = release.Task };
        var dispatcher = new OfferRecordingDispatcher();
        var options = new ERCacheOptions { Models = { ["ctr"] = CacheFixture.DefaultModel(4) } };
        TestThread.LeaveSynchronizationContext();
        using var cache = EmbeddingCache.Create(
            options, new Dictionary<string, IEmbeddingInference> { ["ctr"] = tower },
            new EmbeddingCacheServices { TimeProvider = clock, Dispatcher = dispatcher });
        var vector = new float[4];
        var pending = cache.GetAsync("ctr", 7, vector).AsTask();
        dispatcher.Watch(pending, cache.GetTier("ctr", TierKind.Direct)!);
        Assert.Empty(dispatcher.Offers); // the call waits for the tower

        release.SetResult(); // the call completes on this thread
        var result = await pending;

        Assert.Equal(EmbeddingSource.Fresh, result.Source);
        var offer = Assert.Single(dispatcher.Offers);
        Assert.Same(Assert.Single(dispatcher.Dispatched), offer.State);
        Assert.Equal((false, 1), (offer.Answered, offer.RowsWritten));
    }

    /// <summary>Runs each call at once and records each offer: of which call, whether the watched request had been
    /// answered, and how many rows the watched tier held.</summary>
    private sealed class OfferRecordingDispatcher : InferenceDispatcher
    {
        private Task? _request;
        private ERCache.Tiers.EmbeddingTier? _tier;

        public List<object?> Dispatched { get; } = [];

        public List<(object? State, bool Answered, int RowsWritten)> Offers { get; } = [];

        public void Watch(Task request, ERCache.Tiers.EmbeddingTier tier) => (_request, _tier) = (request, tier);

        public override void Dispatch(Action<object?> work, object? state)
        {
            Dispatched.Add(state);
            work(state);
        }

        internal override void OfferCurrentThread(object? state) =>
            Offers.Add((state, _request!.IsCompleted, _tier!.Count));
    }

    /// <summary>Runs each call at once on the dispatching thread; optionally a simulation's dispatcher.</summary>
    private sealed class RunNowDispatcher(bool simulation) : InferenceDispatcher
    {
        internal override bool RunsWaitersInline => simulation;

        public override void Dispatch(Action<object?> work, object? state) => work(state);
    }

    [Fact]
    public void The_inline_dispatcher_runs_on_the_calling_thread_and_never_nests_one_call_in_another()
    {
        var order = new List<string>();
        int thread = Environment.CurrentManagedThreadId;
        InferenceDispatcher.Inline.Dispatch(
            _ =>
            {
                order.Add("first starts");
                InferenceDispatcher.Inline.Dispatch(_ => order.Add($"second on caller thread: {Environment.CurrentManagedThreadId == thread}"), null);
                order.Add("first ends");
            },
            null);

        Assert.Equal(["first starts", "first ends", "second on caller thread: True"], order);
    }

    [Fact]
    public void The_inline_dispatcher_is_usable_again_after_a_call_throws()
    {
        Assert.Throws<InvalidOperationException>(() => InferenceDispatcher.Inline.Dispatch(_ => throw new InvalidOperationException(), null));

        bool ran = false;
        InferenceDispatcher.Inline.Dispatch(_ => ran = true, null);
        Assert.True(ran);
    }

    [Fact]
    public void The_dedicated_dispatcher_refuses_negative_settings()
    {
        Assert.Equal("spinBeforeBlocking", Assert.Throws<ArgumentOutOfRangeException>(() => new DedicatedThreadDispatcher(spinBeforeBlocking: TimeSpan.FromTicks(-1))).ParamName);
        Assert.Equal("idleTimeout", Assert.Throws<ArgumentOutOfRangeException>(() => new DedicatedThreadDispatcher(idleTimeout: TimeSpan.FromTicks(-1))).ParamName);
        Assert.Equal("maxWatchingThreads", Assert.Throws<ArgumentOutOfRangeException>(() => new DedicatedThreadDispatcher(maxWatchingThreads: -1)).ParamName);
        Assert.True(DedicatedThreadDispatcher.DefaultSpinBeforeBlocking >= TimeSpan.Zero);
        Assert.Equal(Math.Max(0, Environment.ProcessorCount - 1), DedicatedThreadDispatcher.DefaultMaxWatchingThreads);
    }

    /// <summary>A lone miss prefetches what its write will touch only where that write happens: on the caller's thread
    /// with <c>RunInline</c> or the inline dispatcher, not when a dispatcher thread makes the call.</summary>
    [Theory]
    [InlineData(false, "dedicated", false)]
    [InlineData(true, "dedicated", true)]
    [InlineData(false, "inline", true)]
    [InlineData(false, "pool", false)]
    public void Calls_start_on_the_caller_thread_only_inline(bool runInline, string dispatcherName, bool expected)
    {
        var dispatcher = dispatcherName switch
        {
            "dedicated" => InferenceDispatcher.DedicatedThreads,
            "inline" => InferenceDispatcher.Inline,
            _ => InferenceDispatcher.ThreadPool,
        };
        using var f = new CacheFixture(m => m.Inference.RunInline = runInline, dispatcher: dispatcher);

        Assert.Equal(expected, f.Cache.ResolveState(CacheFixture.Model).Scheduler.CallsStartOnCallerThread);
    }
}
