using ERCache.Inference;

namespace ERCache.Testing;

/// <summary>
/// An <see cref="InferenceDispatcher"/> that holds every delegate call until the test runs it, so a test decides
/// exactly when batches execute (and can look at the cache while they wait) without polling real time. Pass it to
/// <see cref="EmbeddingCache.Create"/>, or register it as the <see cref="InferenceDispatcher"/> service.
/// </summary>
public sealed class ManualInferenceDispatcher : InferenceDispatcher
{
    private readonly Queue<(Action<object?> Work, object? State)> _waiting = new();
    private readonly Lock _lock = new();
    private TaskCompletionSource? _dispatched;

    /// <summary>Delegate calls dispatched and not run yet.</summary>
    public int Pending
    {
        get
        {
            lock (_lock)
            {
                return _waiting.Count;
            }
        }
    }

    /// <inheritdoc />
    public override void Dispatch(Action<object?> work, object? state)
    {
        ArgumentNullException.ThrowIfNull(work);
        TaskCompletionSource? dispatched;
        lock (_lock)
        {
            _waiting.Enqueue((work, state));
            dispatched = _dispatched;
            _dispatched = null;
        }

        dispatched?.TrySetResult(); // outside the lock: its continuations run asynchronously anyway
    }

    /// <summary>
    /// Completes when a call is waiting (at once if one already is): for a test whose request reaches the scheduler only
    /// after real I/O, such as a regional lookup against a real store, to wait for that call without polling.
    /// </summary>
    /// <param name="cancellationToken">Ends the wait with <see cref="OperationCanceledException"/>.</param>
    public Task WhenPendingAsync(CancellationToken cancellationToken = default)
    {
        Task waiting;
        lock (_lock)
        {
            if (_waiting.Count > 0)
            {
                return Task.CompletedTask;
            }

            _dispatched ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            waiting = _dispatched.Task;
        }

        return waiting.WaitAsync(cancellationToken);
    }

    /// <summary>Runs the oldest waiting call on this thread; returns <see langword="false"/> when none waits.</summary>
    public bool RunNext()
    {
        (Action<object?> Work, object? State) next;
        lock (_lock)
        {
            if (!_waiting.TryDequeue(out next))
            {
                return false;
            }
        }

        next.Work(next.State);
        return true;
    }

    /// <summary>Runs waiting calls, including those they dispatch in turn, until none waits; returns how many ran.</summary>
    public int RunAll()
    {
        int ran = 0;
        while (RunNext())
        {
            ran++;
        }

        return ran;
    }
}
