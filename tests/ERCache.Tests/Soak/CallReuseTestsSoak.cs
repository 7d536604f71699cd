using ERCache.Inference;
using ERCache.Tests.Infrastructure;

namespace ERCache.Tests;

/// <summary>The real-thread tests of <see cref="CallReuseTests"/>.</summary>
[Collection(SoakDefinition.Name)]
public sealed class CallReuseTestsSoak
{
    private static readonly TimeSpan HardTimeout = TimeSpan.FromSeconds(1);

    [Fact]
    public async Task After_a_call_cancelled_at_its_hard_limit_the_next_call_gets_a_live_token()
    {
        using var f = new CacheFixture(m => { m.Inference.Timeout = TimeSpan.FromMilliseconds(50); m.Inference.HardTimeout = HardTimeout; }, dispatcher: InferenceDispatcher.DedicatedThreads); // its tower never awaits: it needs a thread of its own
        using var started = new ManualResetEventSlim();
        var firstCancelled = new TaskCompletionSource();
        bool? secondSawCancelled = null;
        f.Tower.Whole = (batch, ct) =>
        {
            if (batch.UserIds.Span[0] == 1)
            {
                started.Set();
                while (!ct.IsCancellationRequested)
                {
                    Thread.SpinWait(100);
                }

                firstCancelled.SetResult();
                ct.ThrowIfCancellationRequested();
            }

            secondSawCancelled = ct.IsCancellationRequested;
            TestTower.Fill(batch.GetRow(0).Span, batch.UserIds.Span[0], 0);
            return ValueTask.CompletedTask;
        };

        var first = f.Cache.GetAsync(CacheFixture.Model, 1, new float[4]).AsTask();
        Assert.True(started.Wait(TimeSpan.FromSeconds(30)));
        f.Clock.Advance(HardTimeout);
        await firstCancelled.Task.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(InferenceFailureCause.Timeout, (await first.WaitAsync(TimeSpan.FromSeconds(30))).FailureCause);
        await Poll.Until(() => f.Cache.GetInFlight(CacheFixture.Model) == 0);

        var second = await f.GetAsync(2).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(EmbeddingSource.Fresh, second.Result.Source);
        Assert.False(secondSawCancelled);
    }
}
