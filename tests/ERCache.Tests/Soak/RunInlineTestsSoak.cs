using ERCache.Inference;
using ERCache.Tests.Infrastructure;

namespace ERCache.Tests;

/// <summary>The real-thread tests of <see cref="RunInlineTests"/>.</summary>
[Collection(SoakDefinition.Name)]
public sealed class RunInlineTestsSoak
{
    [Fact]
    public async Task Without_RunInline_a_synchronous_delegate_runs_on_the_pool_while_the_caller_returns()
    {
        using var f = new CacheFixture(dispatcher: InferenceDispatcher.DedicatedThreads); // RunInline is off by default; a real dispatcher
        using var release = new ManualResetEventSlim();
        f.Tower.PerUser = (user, batch, i, _) =>
        {
            release.Wait(TimeSpan.FromSeconds(30), CancellationToken.None); // blocks its thread: inline, GetAsync could not return
            TestTower.Fill(batch.GetRow(i).Span, user, 0);
            return ValueTask.CompletedTask;
        };

        var pending = f.Cache.GetAsync(CacheFixture.Model, 5, new float[4]);
        Assert.False(pending.IsCompleted);
        release.Set();

        Assert.Equal(EmbeddingSource.Fresh, (await pending).Source);
    }

    [Fact]
    public async Task A_synchronous_delegate_that_checks_its_token_is_cancelled_at_the_hard_limit()
    {
        using var f = new CacheFixture(m => { m.Inference.Timeout = TimeSpan.FromMilliseconds(50); m.Inference.HardTimeout = TimeSpan.FromSeconds(1); }, dispatcher: InferenceDispatcher.DedicatedThreads); // its tower never awaits: it needs a thread of its own
        using var started = new ManualResetEventSlim();
        var cancelled = new TaskCompletionSource();
        f.Tower.Whole = (_, ct) =>
        {
            started.Set();
            while (!ct.IsCancellationRequested)
            {
                Thread.SpinWait(100); // a CPU-bound tower that never awaits, but checks its token
            }

            cancelled.SetResult();
            ct.ThrowIfCancellationRequested();
            return ValueTask.CompletedTask;
        };

        var pending = f.Cache.GetAsync(CacheFixture.Model, 5, new float[4]).AsTask();
        Assert.True(started.Wait(TimeSpan.FromSeconds(30)));
        f.Clock.Advance(TimeSpan.FromMilliseconds(50));
        Assert.Equal(InferenceFailureCause.Timeout, (await pending).FailureCause); // the caller leaves at its deadline
        Assert.False(cancelled.Task.IsCompleted);

        f.Clock.Advance(TimeSpan.FromMilliseconds(950));
        await cancelled.Task.WaitAsync(TimeSpan.FromSeconds(30)); // the hard limit reached the running delegate
    }
}
