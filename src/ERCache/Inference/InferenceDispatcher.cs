namespace ERCache.Inference;

/// <summary>
/// Where the cache runs inference delegate calls. The default, <see cref="ThreadPool"/>, queues each call to the .NET
/// thread pool; <see cref="Inline"/> runs it on the thread that starts it. A custom dispatcher (dedicated threads for a
/// tower that blocks, or a test dispatcher that runs calls when the test says so) derives from this class and is passed
/// to <see cref="EmbeddingCache.Create"/> or registered in dependency injection.
/// </summary>
/// <remarks>With <c>Inference:RunInline</c>, a caller's first batch still runs on the caller's own thread; the
/// dispatcher runs every other call.</remarks>
public abstract class InferenceDispatcher
{
    /// <summary>Queues each call to the .NET thread pool (the default).</summary>
    public static InferenceDispatcher ThreadPool { get; } = new ThreadPoolDispatcher();

    /// <summary>Runs each call on the thread that starts it. A call started while another runs inline on the same
    /// thread waits until that one returns, so finishing one call never recurses into the next.</summary>
    public static InferenceDispatcher Inline { get; } = new InlineDispatcher();

    /// <summary>Runs <paramref name="work"/> with <paramref name="state"/>, now or later, on any thread. It must run
    /// exactly once: a call that is never run leaves its users waiting until their deadline.</summary>
    /// <param name="work">The delegate call; it handles its own exceptions.</param>
    /// <param name="state">The argument for <paramref name="work"/>.</param>
    public abstract void Dispatch(Action<object?> work, object? state);

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
