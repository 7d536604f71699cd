using ERCache.Diagnostics;
using Microsoft.Extensions.Logging;
using Polly.CircuitBreaker;

namespace ERCache.Inference;

/// <summary>
/// Runs one model version's inference under its SLA and returns an outcome per user: coalesces concurrent misses for
/// the same user, gathers misses from every caller into delegate calls of at most <c>MaxBatchSize</c>, keeps at most
/// <c>MaxConcurrency</c> calls in flight, sheds what cannot start before its deadline, and hands each finished call's
/// rows to its model version's <see cref="IInferenceResultSink"/>. It never touches a tier: what is cached where is the
/// model runtime's decision.
/// </summary>
/// <remarks>
/// Every structure is bounded: the queue by <c>MaxQueue</c> (a miss beyond it is shed at once), the pending map by the
/// queue plus the users of in-flight calls, and the callers of an abandoned call by <c>HardTimeout</c>. A call counts
/// against <c>MaxConcurrency</c> until its delegate returns, abandoned or not: a model that hangs fills its slots and
/// then sheds, rather than piling up calls. Callers wait on a shared task with their own deadline and cancellation;
/// giving up never cancels an inference others wait for.
/// </remarks>
internal sealed partial class InferenceScheduler : IDisposable
{
    private readonly PendingMap _pending = new(); // under _lock, like the queue
    private readonly MissQueue _queue = new(); // under _lock
    private readonly DeadlineAlarm _alarm; // under _lock: answers each request's creator at its deadline
    private readonly Lock _lock = new();
    private readonly TimeProvider _time;
    private readonly ERCacheMetrics _metrics;
    private readonly ILogger _logger;
    private readonly InferenceDispatcher _dispatcher;
    private readonly DelegateInvoker _invoker;
    private readonly Action<object?> _runBatch;
    private readonly IEmbeddingInference _inference;
    private readonly IInferenceResultSink _sink;
    private ModelPolicy _policy = null!;
    private ITimer? _windowTimer;
    private InferenceBatch? _spareBatch;
    private int _inFlight;
    private IBackgroundBatchSource? _background; // a rollout's warming, run on slots nobody needs; set under _lock
    private int _backgroundInFlight; // under _lock: background batches (warming) in flight
    private long _ticksPerUser; // the tower's time per user, a moving average (0 until a call succeeded)
    private int _abandoned; // under _lock: calls past their hard timeout whose delegate has not returned (each holds a slot)
    private bool _disposed; // under _lock
    private TaskCompletionSource? _idle; // under _lock: waiters of WhenIdleAsync

    /// <summary>A scheduler for one model version: <paramref name="inference"/> computes the rows, <paramref name="sink"/>
    /// receives them, <paramref name="policy"/> is the first settings (see <see cref="Configure"/>), and
    /// <paramref name="gate"/> holds the model's slots when another version's scheduler shares them (null: slots of its
    /// own).</summary>
    public InferenceScheduler(
        TimeProvider time, ERCacheMetrics metrics, ILogger logger, InferenceDispatcher dispatcher, IEmbeddingInference inference,
        IInferenceResultSink sink, ModelPolicy policy, SlotGate? gate = null)
    {
        Gate = gate ?? new SlotGate();
        Gate.Join(this);
        _time = time;
        _inference = inference;
        _sink = sink;
        _metrics = metrics;
        _logger = logger;
        _dispatcher = dispatcher;
        _invoker = new DelegateInvoker(time, logger, ReleaseAbandonedSlot);
        _alarm = new DeadlineAlarm(time, OnAlarm);
        _runBatch = state => _ = state is BackgroundBatch background
            ? RunBatchAsync(background.Items, background.Target)
            : RunBatchAsync((PendingInference[])state!, target: null);
        Configure(policy);
    }

    /// <summary>The model's delegate slots, which this scheduler may share with another version's.</summary>
    public SlotGate Gate { get; }

    /// <summary>Delegate calls in flight now.</summary>
    public int InFlight => Volatile.Read(ref _inFlight);

    /// <summary>Calls abandoned at their hard timeout whose delegate has not returned yet: each still holds a slot, so
    /// when they are <c>MaxConcurrency</c> every miss is shed (the health check then reports the model).</summary>
    public int AbandonedCalls => Volatile.Read(ref _abandoned);

    /// <summary>Users waiting for a free delegate call.</summary>
    public int Queued
    {
        get
        {
            lock (_lock)
            {
                return _queue.Count;
            }
        }
    }

    /// <summary>Requests' inferences whose creator the deadline alarm will answer at its deadline.</summary>
    internal int AlarmCount
    {
        get
        {
            lock (_lock)
            {
                return _alarm.Count;
            }
        }
    }

    /// <summary>Users queued or in a delegate call (the pending map's size).</summary>
    public int PendingUsers
    {
        get
        {
            lock (_lock)
            {
                return _pending.Count;
            }
        }
    }

    /// <summary>Completes once no delegate call is in flight and no user is queued: a point a test can await after
    /// releasing a tower whose call then finishes through continuations it does not control, instead of polling
    /// <see cref="InFlight"/>.</summary>
    public Task WhenIdleAsync()
    {
        lock (_lock)
        {
            return _inFlight == 0 && _queue.Count == 0
                ? Task.CompletedTask
                : (_idle ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;
        }
    }

    /// <summary>Completes <see cref="WhenIdleAsync"/>'s waiters when nothing runs or waits any more. Under the lock.</summary>
    private void SignalIdle()
    {
        if (_idle is not null && _inFlight == 0 && _queue.Count == 0)
        {
            _idle.TrySetResult();
            _idle = null;
        }
    }

    /// <summary>The model version's name for its rows (batches of another scheduler's background work carry it).</summary>
    internal string Version => Policy.Version;

    /// <summary>Whether the scheduler was disposed (its rows are written nowhere any more).</summary>
    internal bool IsDisposed => Volatile.Read(ref _disposed);

    /// <summary>Whether the call that a submitted miss starts runs on the submitting thread (<c>RunInline</c>, or the inline
    /// dispatcher): only then does what the caller prefetches for the call's write load on the core that writes.</summary>
    internal bool CallsStartOnCallerThread => Policy.RunInline || ReferenceEquals(_dispatcher, InferenceDispatcher.Inline);

    /// <summary>The breaker's state, or null when the breaker is disabled.</summary>
    public CircuitState? BreakerState => _invoker.BreakerState;

    private ModelPolicy Policy => Volatile.Read(ref _policy);

    /// <summary>Applies a reload's settings (same version and dimensions): batch size, concurrency, queue, timeouts,
    /// breaker.</summary>
    public void Configure(ModelPolicy policy)
    {
        _invoker.Configure(policy);
        Volatile.Write(ref _policy, policy);
        Gate.Max = policy.MaxConcurrency;
    }

    /// <summary>
    /// Stops starting calls: the window timer and the spare batch and call are released, and users still queued get
    /// an error (their callers have all been answered by then). Calls that still run finish on their own and write
    /// nothing.
    /// </summary>
    public void Dispose()
    {
        List<PendingInference> dropped = [];
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            _background = null;
            _windowTimer?.Dispose();
            _windowTimer = null;
            _alarm.Dispose();
            while (_queue.TryDequeue(out var item))
            {
                _pending.RemoveIfCurrent(item);
                dropped.Add(item);
            }

            SignalIdle();
        }

        foreach (var item in dropped)
        {
            item.Complete(new InferenceOutcome(InferenceFailureCause.Error, null));
        }

        Interlocked.Exchange(ref _spareBatch, null)?.Release();
        _invoker.Dispose();
        Gate.Leave(this);
    }

    /// <summary>The urgency of the most urgent queued user, or null when none is queued.</summary>
    internal long? MostUrgentQueued
    {
        get
        {
            lock (_lock)
            {
                return _queue.MostUrgent;
            }
        }
    }

    /// <summary>A slot may be free and this scheduler is the gate's only one: start queued work, else background work.
    /// <paramref name="queued"/> is whether users were queued, when the caller just read it under the lock (a call's end
    /// does), so as not to take the lock again for it: a miss queued since then took the free slot itself.</summary>
    internal void OnSlotFreed(bool? queued = null)
    {
        if (queued is null)
        {
            lock (_lock)
            {
                queued = _queue.Count > 0;
            }
        }

        if (queued.Value)
        {
            Dispatch();
        }
        else
        {
            StartBackground();
        }
    }

}
