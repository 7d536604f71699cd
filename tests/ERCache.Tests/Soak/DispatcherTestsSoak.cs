using ERCache.Inference;
using ERCache.Testing;
using ERCache.Tests.Infrastructure;
using Microsoft.Extensions.Time.Testing;

namespace ERCache.Tests;

/// <summary>The real-thread and real-clock tests of <see cref="DispatcherTests"/>.</summary>
[Collection(SoakDefinition.Name)]
public sealed class DispatcherTestsSoak
{
    /// <summary>Hand-offs to busy, just-idle and long-idle workers from several threads at once: every call runs exactly
    /// once, on few threads (a parked worker takes the next call instead of a new thread starting). Each way a parked
    /// worker waits: watching for its next call (the default, and a longer watch that sees more of them), blocked
    /// at once (every hand-off wakes it through the semaphore), blocked with no idle time (a worker retires unless a
    /// Dispatch claimed it as it timed out, which must then still hand it its call), and a long watch for one thread at
    /// a time (the others block at once).</summary>
    [Theory]
    [InlineData(-1, -1, -1)]
    [InlineData(100, -1, -1)]
    [InlineData(0, -1, -1)]
    [InlineData(0, 0, -1)]
    [InlineData(100, -1, 1)]
    public async Task Hammer_the_dedicated_dispatcher_runs_every_call_exactly_once(int spinMicroseconds, int idleMilliseconds, int maxWatching)
    {
        var dispatcher = new DedicatedThreadDispatcher(
            spinMicroseconds < 0 ? null : TimeSpan.FromMicroseconds(spinMicroseconds),
            idleMilliseconds < 0 ? null : TimeSpan.FromMilliseconds(idleMilliseconds),
            maxWatching < 0 ? null : maxWatching);
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
        // A worker with no idle time exits as soon as nothing is handed to it, so there only the calls are bounded.
        Assert.InRange(threads.Count, 1, idleMilliseconds == 0 ? runs.Length : runs.Length / 10);
    }

    /// <summary>Threads that finish their calls together watch for the next one only up to the bound: with one allowed,
    /// of two threads one watches and the other blocks at once (it does not spin beside the first); the watcher blocks
    /// when its watch ends.</summary>
    [Fact]
    public void Threads_past_the_watching_bound_block_at_once()
    {
        var dispatcher = new DedicatedThreadDispatcher(TimeSpan.FromSeconds(3), maxWatchingThreads: 1);
        using var bothRunning = new CountdownEvent(2);
        using var release = new ManualResetEventSlim();
        for (int i = 0; i < 2; i++)
        {
            dispatcher.Dispatch(_ =>
            {
                bothRunning.Signal();
                release.Wait();
            }, null);
        }

        try
        {
            Assert.True(bothRunning.Wait(TimeSpan.FromSeconds(30)), "two threads did not start");
        }
        finally
        {
            release.Set(); // both calls return together
        }

        // The second thread to finish found the place taken (without the bound it would spin beside the first and count
        // nothing); then both end blocked once the first one's watch is over. Whether the test sees the moment between,
        // one watching and one blocked, depends on how fast it runs, so it is not asserted.
        Assert.True(SpinWait.SpinUntil(() => dispatcher.WatchesSkipped == 1, TimeSpan.FromSeconds(30)), $"skipped {dispatcher.WatchesSkipped} watches");
        Assert.True(SpinWait.SpinUntil(() => dispatcher.CountBlocked() == 2, TimeSpan.FromSeconds(30)), $"{dispatcher.CountBlocked()} of 2 blocked");
        Assert.Equal(1, dispatcher.WatchesSkipped);
    }

    /// <summary>A thread offered while its call finishes (the scheduler does so before answering the callers) takes the
    /// next call, and runs it only once the current one has returned.</summary>
    [Fact]
    public async Task A_thread_offered_before_its_call_returns_runs_the_next_call_after_it()
    {
        var dispatcher = new DedicatedThreadDispatcher();
        using var offered = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        int firstThread = 0, secondThread = 0;
        bool firstReturned = false, secondSawFirstReturned = false;
        var second = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        dispatcher.Dispatch(
            state =>
            {
                firstThread = Environment.CurrentManagedThreadId;
                dispatcher.OfferCurrentThread(state);
                offered.Set();
                release.Wait();
                Volatile.Write(ref firstReturned, true);
            },
            new object());
        try
        {
            Assert.True(offered.Wait(TimeSpan.FromSeconds(30)));
            dispatcher.Dispatch(
                _ =>
                {
                    secondThread = Environment.CurrentManagedThreadId;
                    secondSawFirstReturned = Volatile.Read(ref firstReturned);
                    second.SetResult();
                },
                null);
        }
        finally
        {
            release.Set(); // never leave the first call blocked on an event this test disposes
        }

        await second.Task.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(firstThread, secondThread);
        Assert.True(secondSawFirstReturned);
    }

    /// <summary>An offer for a call the thread is not running (an asynchronous delegate's continuation finishing another
    /// call there), or from a thread that is not the dispatcher's, changes nothing: the next call starts on another
    /// thread at once.</summary>
    [Fact]
    public async Task An_offer_for_another_call_or_from_another_thread_changes_nothing()
    {
        var dispatcher = new DedicatedThreadDispatcher();
        var call = new object();
        dispatcher.OfferCurrentThread(call); // the test's own thread: not a worker
        using var offered = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        int firstThread = 0, secondThread = 0;
        var second = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        dispatcher.Dispatch(
            _ =>
            {
                firstThread = Environment.CurrentManagedThreadId;
                dispatcher.OfferCurrentThread(new object()); // not this call's state
                offered.Set();
                release.Wait();
            },
            call);
        try
        {
            Assert.True(offered.Wait(TimeSpan.FromSeconds(30)));
            dispatcher.Dispatch(
                _ =>
                {
                    secondThread = Environment.CurrentManagedThreadId;
                    second.SetResult();
                },
                null);
            await second.Task.WaitAsync(TimeSpan.FromSeconds(30)); // while the first call still blocks: another thread
        }
        finally
        {
            release.Set(); // never leave the first call blocked on an event this test disposes
        }

        Assert.NotEqual(firstThread, secondThread);
    }

    /// <summary>Misses from several callers, shared users among them (coalesced waiters beside creators), on the default
    /// dispatcher, with a tower that completes sometimes at once (on the inference thread, which then finishes the
    /// requests) and sometimes later: no caller ever continues on an inference thread or receives another user's
    /// vector.</summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)] // a synchronous call completes on the caller's thread, which reuses its miss's buffers
    public async Task Hammer_misses_on_the_default_dispatcher_never_continue_a_caller_on_an_inference_thread(bool runInline)
    {
        using var f = new CacheFixture(
            m =>
            {
                m.Inference.RunInline = runInline;
                m.Inference.Timeout = TimeSpan.FromMinutes(1); // the fake clock never moves: every miss is answered fresh
                m.Direct.Capacity = 64; // most requests miss: 300 users share 64 entries
                m.Failover.Enabled = false;
            },
            dispatcher: InferenceDispatcher.DedicatedThreads);
        f.Tower.Whole = async (batch, _) =>
        {
            if (batch.UserIds.Span[0] % 3 == 0)
            {
                await Task.Yield(); // completes later, on a pool thread
            }

            for (int i = 0; i < batch.Count; i++)
            {
                TestTower.Fill(batch.GetRow(i).Span, batch.UserIds.Span[i], 0);
            }
        };
        int onInferenceThread = 0, foreign = 0, fresh = 0;
        var callers = Enumerable.Range(0, 4).Select(t => Task.Run(async () =>
        {
            var rng = new Random(t);
            var users = new long[4];
            var vectors = new float[users.Length * 4];
            var results = new EmbeddingResult[users.Length];
            for (int call = 0; call < 2_000; call++)
            {
                var vector = new float[4];
                long user = rng.Next(1, 300);
                var result = await f.Cache.GetAsync(CacheFixture.Model, user, vector);
                Count(result, vector, user);
                for (int i = 0; i < users.Length; i++)
                {
                    users[i] = rng.Next(1, 300);
                }

                await f.Cache.GetManyAsync(CacheFixture.Model, users, vectors, results);
                for (int i = 0; i < users.Length; i++)
                {
                    Count(results[i], vectors.AsSpan(i * 4, 4), users[i]);
                }
            }
        })).ToArray();

        void Count(EmbeddingResult result, ReadOnlySpan<float> vector, long user)
        {
            if (Thread.CurrentThread.Name == "ERCache inference")
            {
                Interlocked.Increment(ref onInferenceThread);
            }

            if (result.Source == EmbeddingSource.Fresh)
            {
                Interlocked.Increment(ref fresh);
            }

            if (vector[0] != TestTower.Expected(user, 0, 0) || vector[3] != TestTower.Expected(user, 3, 0) || !result.HasVector)
            {
                Interlocked.Increment(ref foreign);
            }
        }

        await Task.WhenAll(callers).WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(0, onInferenceThread);
        Assert.Equal(0, foreign);
        Assert.InRange(fresh, 1_000, 4 * 2_000 * 5); // most of the 40,000 answers missed the 64 entries
    }
}
