namespace ERCache.Inference;

/// <summary>
/// Where the cache runs inference delegate calls. The default, <see cref="DedicatedThreads"/>, runs each call on a
/// thread outside the .NET thread pool, so a tower that blocks cannot starve the callers; <see cref="ThreadPool"/>
/// queues each call to the thread pool (fine for towers that never block); <see cref="Inline"/> runs it on the thread
/// that starts it. A custom dispatcher (for example a test dispatcher that runs calls when the test says so) derives
/// from this class and is passed to <see cref="EmbeddingCache.Create"/> or registered in dependency injection.
/// </summary>
/// <remarks>With <c>Inference:RunInline</c>, a caller's first batch still runs on the caller's own thread; the
/// dispatcher runs every other call.</remarks>
public abstract class InferenceDispatcher
{
    /// <summary>Runs each call on a thread of the cache's own (the default): an idle one, or a new one when none is idle;
    /// a thread idle for 30 seconds exits. Calls that block never hold thread-pool threads. The threads are bounded by
    /// the calls that run at once, that is by the models' <c>MaxConcurrency</c>.</summary>
    public static InferenceDispatcher DedicatedThreads { get; } = new DedicatedThreadDispatcher();

    /// <summary>Queues each call to the .NET thread pool. Cheapest for a tower that never blocks a thread; a blocking
    /// tower takes pool threads that callers need to be answered by their deadline.</summary>
    public static InferenceDispatcher ThreadPool { get; } = new ThreadPoolDispatcher();

    /// <summary>Runs each call on the thread that starts it. A call started while another runs inline on the same
    /// thread waits until that one returns, so finishing one call never recurses into the next.</summary>
    public static InferenceDispatcher Inline { get; } = new InlineDispatcher();

    /// <summary>Runs <paramref name="work"/> with <paramref name="state"/>, now or later, on any thread. It must run
    /// exactly once: a call that is never run leaves its users waiting until their deadline.</summary>
    /// <param name="work">The delegate call; it handles its own exceptions.</param>
    /// <param name="state">The argument for <paramref name="work"/>.</param>
    public abstract void Dispatch(Action<object?> work, object? state);

    /// <summary>True only for a single-threaded simulation (the replay harness drives every call, timer and waiter from
    /// one thread, on a virtual clock): a caller waiting for a pending inference is continued on the thread that
    /// completes it, so nothing reaches the thread pool and the simulation is deterministic. Every real dispatcher
    /// leaves it false: the cache finishes the request on the completing thread, and the caller's own code continues on
    /// the thread pool, so it neither holds an inference thread nor delays the rest of the batch.</summary>
    internal virtual bool RunsWaitersInline => false;

    /// <summary>The call dispatched with <paramref name="state"/> has made its delegate call and is about to answer its
    /// callers: a dispatcher with threads of its own may hand this thread its next call now, to run once this one
    /// returns. Otherwise a caller answered by this call, missing again at once, would find no idle thread and wake
    /// another. Nothing when this thread is not running that call (an asynchronous delegate's continuation, a caller's
    /// own thread); nothing in the other dispatchers.</summary>
    internal virtual void OfferCurrentThread(object? state)
    {
    }

    private sealed class ThreadPoolDispatcher : InferenceDispatcher
    {
        public override void Dispatch(Action<object?> work, object? state) =>
            System.Threading.ThreadPool.UnsafeQueueUserWorkItem(work, state, preferLocal: false);
    }

    private sealed class InlineDispatcher : InferenceDispatcher
    {
        [ThreadStatic]
        private static Queue<(Action<object?> Work, object? State)>? _pending;

        public override void Dispatch(Action<object?> work, object? state)
        {
            if (_pending is { } running)
            {
                running.Enqueue((work, state)); // a call is running on this thread: run this one after it (a trampoline)
                return;
            }

            var queue = _pending = new Queue<(Action<object?>, object?)>();
            try
            {
                work(state);
                while (queue.TryDequeue(out var next))
                {
                    next.Work(next.State);
                }
            }
            finally
            {
                _pending = null;
            }
        }
    }
}
