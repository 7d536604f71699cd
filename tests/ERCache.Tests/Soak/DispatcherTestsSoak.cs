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
