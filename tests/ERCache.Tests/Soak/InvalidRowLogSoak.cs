using ERCache.Inference;
using ERCache.Internal;
using ERCache.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Time.Testing;

namespace ERCache.Tests;

/// <summary>The real-thread test of the invalid-row log (<see cref="FailureLoggingTests"/>).</summary>
[Collection(SoakDefinition.Name)]
public sealed class InvalidRowLogSoak
{
    [Fact]
    public void Reports_from_many_threads_log_once_per_interval_and_lose_no_count()
    {
        const int Threads = 4, PerThread = 2_000;
        var clock = new FakeTimeProvider();
        var logs = new FakeLogCollector();
        var log = new InvalidRowLog(new FakeLogger(logs), clock, "ctr");
        var batches = Enumerable.Range(0, Threads).Select(_ =>
        {
            var batch = new InferenceBatch("ctr", "1", 4, [1L]);
            batch.SetRow(0, [1f, 2f]); // wrong length
            return batch;
        }).ToArray();

        using var start = new Barrier(Threads);
        CheckedThread.RunAll(Enumerable.Range(0, Threads).Select(t => (Action)(() =>
        {
            start.SignalAndWait();
            for (int i = 0; i < PerThread; i++)
            {
                log.Report(batches[t], 0);
            }
        })));

        Assert.Single(logs.GetSnapshot()); // one line within the interval, whichever thread wrote it
        clock.Advance(LogThrottle.Interval);
        log.Report(batches[0], 0);
        var last = logs.GetSnapshot()[^1].Message;
        Assert.Contains($"({(Threads * PerThread) - 1} more of this kind since the last such line.)", last, StringComparison.Ordinal);
    }
}
