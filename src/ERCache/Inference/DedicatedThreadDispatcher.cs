namespace ERCache.Inference;

/// <summary>
/// Runs delegate calls on threads of its own, outside the .NET thread pool, so a model that blocks (a synchronous
/// tower, a blocking RPC) cannot take the pool threads that callers' deadline continuations and the rest of the
/// service need. A call is handed to an idle thread, or to a new one when none is idle; a thread idle for
/// <see cref="IdleTimeout"/> exits.
/// </summary>
/// <remarks>
/// The number of threads is bounded by the number of calls that run at once, which each model's
/// <c>MaxConcurrency</c> bounds (a call counts until its delegate returns, even past its hard limit). Only the
/// delegate's synchronous part runs here: after its first incomplete await, an asynchronous delegate continues where
/// its awaiter schedules it.
/// </remarks>
internal sealed class DedicatedThreadDispatcher : InferenceDispatcher
{
    /// <summary>How long a thread waits for another call before it exits.</summary>
    public static readonly TimeSpan IdleTimeout = TimeSpan.FromSeconds(30);

    private readonly Lock _lock = new();
    private readonly List<Worker> _idle = []; // most recently idle last: the busiest threads stay warm, the rest retire

    /// <inheritdoc />
    public override void Dispatch(Action<object?> work, object? state)
    {
        ArgumentNullException.ThrowIfNull(work);
        Worker? worker = null;
        lock (_lock)
        {
            if (_idle.Count > 0)
            {
                worker = _idle[^1];
                _idle.RemoveAt(_idle.Count - 1);
            }
        }

        if (worker is not null)
        {
            worker.Hand(work, state);
            return;
        }

        var thread = new Thread(static s => ((Worker)s!).Run()) { IsBackground = true, Name = "ERCache inference" };
        thread.UnsafeStart(new Worker(this, work, state));
    }

    /// <summary>Parks a worker that finished its call, where the next Dispatch finds it.</summary>
    private void Park(Worker worker)
    {
        lock (_lock)
        {
            _idle.Add(worker);
        }
    }

    /// <summary>A worker timed out: it exits if nobody handed it a call meanwhile (then it is no longer parked).</summary>
    private bool TryRetire(Worker worker)
    {
        lock (_lock)
        {
            return _idle.Remove(worker); // false: claimed by a Dispatch that is about to hand it a call
        }
    }

    private sealed class Worker(DedicatedThreadDispatcher owner, Action<object?> work, object? state) : IDisposable
    {
        private readonly SemaphoreSlim _signal = new(0, 1);
        private Action<object?> _work = work;
        private object? _state = state;

        public void Hand(Action<object?> work, object? state)
        {
            _work = work;
            _state = state;
            _signal.Release(); // publishes the fields to the worker
        }

        public void Run()
        {
            while (true)
            {
                var (work, state) = (_work, _state);
                _work = null!;
                _state = null;
                work(state); // the scheduler's call handles its own exceptions, as thread-pool work must

                owner.Park(this);
                if (!_signal.Wait(IdleTimeout))
                {
                    if (owner.TryRetire(this))
                    {
                        Dispose(); // nobody can hand it a call any more
                        return;
                    }

                    _signal.Wait(); // a Dispatch claimed this worker just as it timed out: its call is on the way
                }
            }
        }

        public void Dispose() => _signal.Dispose();
    }
}
