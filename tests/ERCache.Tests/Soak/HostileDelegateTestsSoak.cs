using System.Diagnostics;
using ERCache.Inference;
using ERCache.Tests.Infrastructure;

namespace ERCache.Tests;

/// <summary>The real-thread and real-clock tests of <see cref="HostileDelegateTests"/>.</summary>
[Collection(SoakDefinition.Name)]
public sealed class HostileDelegateTestsSoak
{
    [Fact]
    public async Task A_delegate_that_blocks_its_thread_leaves_the_callers_answered_by_their_deadline()
    {
        // Real clock and real threads: thread-pool starvation is what this is about. The pool gets 8 threads (the test
        // host itself blocks some); 16 blocking calls at once would take them all if they ran there. Bounded by iterations.
        ThreadPool.GetMinThreads(out int workers, out int io);
        ThreadPool.SetMinThreads(8, io);
        try
        {
            var timeout = TimeSpan.FromMilliseconds(50);
            var options = new ERCacheOptions();
            options.Models["blocking"] = CacheFixture.DefaultModel(4);
            options.Models["blocking"].Inference.Timeout = timeout;
            options.Models["blocking"].Inference.MaxConcurrency = 16;
            options.Models["blocking"].Inference.MaxBatchSize = 4;
            var tower = new DelegateInference((batch, _) =>
            {
                Thread.Sleep(300); // a synchronous tower that blocks, ignoring its token
                batch.Destination.Span.Fill(1);
                return ValueTask.CompletedTask;
            });
            using var cache = EmbeddingCache.Create(options, new Dictionary<string, IEmbeddingInference> { ["blocking"] = tower });

            long nextUser = 0;
            var waits = await Task.WhenAll(Enumerable.Range(0, 32).Select(_ => Task.Run(async () =>
            {
                var slowest = TimeSpan.Zero;
                var vector = new float[4];
                for (int i = 0; i < 8; i++)
                {
                    long started = Stopwatch.GetTimestamp();
                    var result = await cache.GetAsync("blocking", Interlocked.Increment(ref nextUser), vector);
                    var waited = Stopwatch.GetElapsedTime(started);
                    slowest = waited > slowest ? waited : slowest;
                    Assert.Equal(EmbeddingSource.Fallback, result.Source); // the tower never answers within 50 ms
                }

                return slowest;
            })));

            Assert.All(waits, w => Assert.True(w < 5 * timeout, $"a caller waited {w.TotalMilliseconds:F0} ms with a {timeout.TotalMilliseconds} ms timeout"));
        }
        finally
        {
            ThreadPool.SetMinThreads(workers, io);
        }
    }

    [Fact]
    public async Task By_default_delegate_calls_run_on_threads_outside_the_thread_pool()
    {
        using var f = new CacheFixture(dispatcher: InferenceDispatcher.DedicatedThreads); // the cache's default
        bool? onPool = null;
        f.Tower.Whole = (batch, _) =>
        {
            onPool = Thread.CurrentThread.IsThreadPoolThread;
            batch.Destination.Span.Fill(1);
            return ValueTask.CompletedTask;
        };

        var (result, _) = await f.GetAsync(1).WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Equal(EmbeddingSource.Fresh, result.Source);
        Assert.False(onPool);
    }
}
