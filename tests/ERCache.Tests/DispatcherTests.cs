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
        using var cache = EmbeddingCache.Create(options, new Dictionary<string, IEmbeddingInference> { ["ctr"] = tower }, clock, dispatcher: dispatcher);

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

    /// <summary>Hand-offs to busy, just-idle and long-idle workers from several threads at once: every call runs exactly
    /// once, on few threads (a parked worker takes the next call instead of a new thread starting).</summary>
    [Fact]
    public async Task Hammer_the_dedicated_dispatcher_runs_every_call_exactly_once()
    {
        var dispatcher = new DedicatedThreadDispatcher();
        const int Producers = 4, CallsEach = 5_000;
        var runs = new int[Producers * CallsEach];
        var threads = new System.Collections.Concurrent.ConcurrentDictionary<int, bool>();
        int done = 0;
        var all = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await Task.WhenAll(Enumerable.Range(0, Producers).Select(p => Task.Run(async () =>
        {
            for (int i = 0; i < CallsEach; i++)
            {
                int id = (p * CallsEach) + i;
                dispatcher.Dispatch(_ =>
                {
                    Interlocked.Increment(ref runs[id]);
                    threads.TryAdd(Environment.CurrentManagedThreadId, true);
                    if (Interlocked.Increment(ref done) == runs.Length)
                    {
                        all.SetResult();
                    }
                }, null);
                if (i % 500 == 0)
                {
                    await Task.Yield(); // let some workers park before the next calls come
                }
            }
        })));

        await all.Task.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.All(runs, r => Assert.Equal(1, r));
        // Reused, not one thread per call. Unthrottled, a burst starts a thread whenever no worker is parked at that
        // instant (about 200 for these 20,000 calls here); under the scheduler, MaxConcurrency bounds the calls in flight.
        Assert.InRange(threads.Count, 1, runs.Length / 10);
    }
}
