using ERCache.Inference;
using ERCache.Testing;
using ERCache.Tests.Infrastructure;

namespace ERCache.Tests;

/// <summary>
/// When a delegate call ends, its users leave the scheduler's pending map before any of their callers is answered: a
/// caller answered first could otherwise miss again and find the finished inference, or join one nobody will answer
/// any more. (Answering a creator whose row went to it alone before that was tried and not kept: docs/benchmarks.md.)
/// </summary>
public sealed class AnswerOrderTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Callers_are_answered_only_after_their_user_left_the_pending_map(bool joined)
    {
        var dispatcher = new SimulationDispatcher();
        using var f = new CacheFixture(dispatcher: dispatcher);
        var scheduler = f.Cache.ResolveState(CacheFixture.Model).Scheduler;
        var pendingWhenAnswered = new List<(int Users, int Alarms)>();

        var requests = Enumerable.Range(0, joined ? 2 : 1) // a creator alone (its row goes to its own buffer), or with a joiner
            .Select(_ => f.Cache.GetAsync(CacheFixture.Model, 1, new float[4]).AsTask()).ToArray();
        var observed = requests.Select(request => request.ContinueWith(
            _ => pendingWhenAnswered.Add((scheduler.PendingUsers, scheduler.AlarmCount)), TaskContinuationOptions.ExecuteSynchronously)).ToArray();
        Assert.Equal((1, 1), (scheduler.PendingUsers, dispatcher.Pending));
        Assert.True(dispatcher.RunNext()); // the call, its bookkeeping and its answers, on this thread

        Assert.All(observed, o => Assert.True(o.IsCompletedSuccessfully)); // each continuation ran as its caller was answered
        Assert.All(pendingWhenAnswered, p => Assert.Equal((0, 0), p));
        Assert.All(await Task.WhenAll(requests), r => Assert.Equal(EmbeddingSource.Fresh, r.Source));
        Assert.Equal(1, f.Tower.CallCount);
    }

    /// <summary>The project's <see cref="ManualInferenceDispatcher"/> (calls run when the test says so) as a
    /// single-threaded simulation's dispatcher (<see cref="InferenceDispatcher.RunsWaitersInline"/>): a request's own
    /// continuation then runs on the thread that answers it, at the moment it is answered.</summary>
    private sealed class SimulationDispatcher : InferenceDispatcher
    {
        private readonly ManualInferenceDispatcher _calls = new();

        public int Pending => _calls.Pending;

        internal override bool RunsWaitersInline => true;

        public override void Dispatch(Action<object?> work, object? state) => _calls.Dispatch(work, state);

        public bool RunNext() => _calls.RunNext();
    }
}
