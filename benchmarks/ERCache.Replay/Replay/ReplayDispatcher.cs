using ERCache.Inference;

namespace ERCache.Replay.Replay;

/// <summary>
/// Where the library's delegate calls wait until the replay runs them, on the replay's thread, right after the step
/// (a request, a tower completion, a timer) that started them. Waiters of a pending inference are continued on the
/// thread that completes it (<see cref="InferenceDispatcher.RunsWaitersInline"/>), so a replay never touches the
/// thread pool and gives the same answer every time.
/// </summary>
internal sealed class ReplayDispatcher : InferenceDispatcher
{
    private readonly Queue<(Action<object?> Work, object? State)> _waiting = new();
    private readonly Lock _lock = new();

    internal override bool RunsWaitersInline => true;

    public override void Dispatch(Action<object?> work, object? state)
    {
        lock (_lock)
        {
            _waiting.Enqueue((work, state));
        }
    }

    /// <summary>Runs every waiting call, including those the calls start.</summary>
    public void RunAll()
    {
        while (true)
        {
            (Action<object?> Work, object? State) next;
            lock (_lock)
            {
                if (!_waiting.TryDequeue(out next))
                {
                    return;
                }
            }

            next.Work(next.State);
        }
    }
}
