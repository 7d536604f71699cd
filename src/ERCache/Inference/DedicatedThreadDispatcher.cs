using System.Diagnostics;
using System.Runtime.InteropServices;
using ERCache.Storage;

namespace ERCache.Inference;

/// <summary>
/// Runs delegate calls on threads of its own, outside the .NET thread pool, so a model that blocks (a synchronous
/// tower, a blocking RPC) cannot take the pool threads that callers' deadline continuations and the rest of the
/// service need. A call is handed to an idle thread, or to a new one when none is idle; a thread idle for
/// <see cref="DefaultIdleTimeout"/> exits.
/// </summary>
/// <remarks>
/// <para>The number of threads is bounded by the number of calls that run at once, which each model's
/// <c>MaxConcurrency</c> bounds (a call counts until its delegate returns, even past its hard limit). Only the
/// delegate's synchronous part runs here: after its first incomplete await, an asynchronous delegate continues where
/// its awaiter schedules it.</para>
/// <para>Two things keep a stream of misses cheap. A thread that finished a call watches for the next one for
/// <see cref="DefaultSpinBeforeBlocking"/> before it blocks: a call handed meanwhile is one write of the worker's
/// state, which the thread sees at once, where waking a blocked thread takes the semaphore's lock and the kernel. And
/// the scheduler offers a thread as soon as its call has written its rows, before it answers the callers
/// (<see cref="OfferCurrentThread"/>): a caller that misses again at once then hands its call to the thread that just
/// answered it, instead of to a second thread that would spin beside it and the caller (three threads on two cores
/// left some misses waiting 30 µs). A thread that waits in vain spins for 20 µs per call it ran
/// (docs/benchmarks.md has the measurements), and at most <see cref="DefaultMaxWatchingThreads"/> threads watch at once
/// (one fewer than the processors): when many calls end together, the others block at once instead of taking the
/// cores that the callers and the towers need.</para>
/// </remarks>
internal sealed class DedicatedThreadDispatcher : InferenceDispatcher
{
    /// <summary>How long a thread waits for another call before it exits, unless the constructor says otherwise.</summary>
    public static readonly TimeSpan DefaultIdleTimeout = TimeSpan.FromSeconds(30);

    /// <summary>How long a thread that finished a call watches for the next one before it blocks, unless the constructor
    /// says otherwise (none on a single processor, where watching only delays the thread that would hand it).</summary>
    public static readonly TimeSpan DefaultSpinBeforeBlocking = Environment.ProcessorCount > 1 ? TimeSpan.FromMicroseconds(20) : TimeSpan.Zero;

    /// <summary>How many threads may watch for a call at once, unless the constructor says otherwise: one fewer than the
    /// processors, so a core is always left to the threads that do the work.</summary>
    public static readonly int DefaultMaxWatchingThreads = Math.Max(0, Environment.ProcessorCount - 1);

    private readonly Lock _lock = new();
    private readonly List<Worker> _idle = []; // most recently idle last: the busiest threads stay warm, the rest retire
    private readonly TimeSpan _idleTimeout;
    private readonly long _spinTicks; // DefaultSpinBeforeBlocking or the constructor's, in Stopwatch ticks
    private readonly int _maxWatching;
    // Written by the workers around each watch; in an object of its own, padded, so those writes do not take the line
    // holding the fields that every Dispatch reads away from the callers' cores.
    private readonly WatchingCount _watching = new();

    /// <param name="spinBeforeBlocking">How long a thread that finished a call watches for the next one before it blocks
    /// (zero: it blocks at once); <see cref="DefaultSpinBeforeBlocking"/> when null.</param>
    /// <param name="idleTimeout">How long a blocked thread waits for a call before it exits; <see cref="DefaultIdleTimeout"/>
    /// when null.</param>
    /// <param name="maxWatchingThreads">How many threads may watch at once (zero: none watches); the others block at once.
    /// <see cref="DefaultMaxWatchingThreads"/> when null.</param>
    public DedicatedThreadDispatcher(TimeSpan? spinBeforeBlocking = null, TimeSpan? idleTimeout = null, int? maxWatchingThreads = null)
    {
        var spin = spinBeforeBlocking ?? DefaultSpinBeforeBlocking;
        _idleTimeout = idleTimeout ?? DefaultIdleTimeout;
        _maxWatching = maxWatchingThreads ?? DefaultMaxWatchingThreads;
        ArgumentOutOfRangeException.ThrowIfLessThan(spin, TimeSpan.Zero, nameof(spinBeforeBlocking));
        ArgumentOutOfRangeException.ThrowIfLessThan(_idleTimeout, TimeSpan.Zero, nameof(idleTimeout));
        ArgumentOutOfRangeException.ThrowIfNegative(_maxWatching, nameof(maxWatchingThreads));
        _spinTicks = _maxWatching == 0 ? 0 : (long)(spin.TotalSeconds * Stopwatch.Frequency);
    }

    /// <summary>How many times a thread blocked at once because <c>maxWatchingThreads</c> others were watching.</summary>
    internal long WatchesSkipped => _watching.Skipped;

    /// <summary>For tests: how many parked threads are blocked on their semaphore, read under the lock.</summary>
    internal int CountBlocked()
    {
        lock (_lock)
        {
            return _idle.Count(worker => worker.IsBlocked);
        }
    }

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

    /// <inheritdoc />
    internal override void OfferCurrentThread(object? state) => Worker.Current?.OfferEarly(state);

    /// <summary>A worker timed out: it exits if nobody handed it a call meanwhile (then it is no longer parked).</summary>
    private bool TryRetire(Worker worker)
    {
        lock (_lock)
        {
            return _idle.Remove(worker); // false: claimed by a Dispatch that is about to hand it a call
        }
    }

    /// <summary>One thread and its next call. A parked worker is claimed by exactly one Dispatch, which hands it one call.</summary>
    private sealed class Worker(DedicatedThreadDispatcher owner, Action<object?> work, object? state) : IDisposable
    {
        // Its state: Running a call; Watching for the next one (parked, spinning); Blocked on the semaphore (parked);
        // Handed its next call. Only Hand moves it to Handed, and only a worker that blocked needs waking.
        private const int Running = 0, Watching = 1, Blocked = 2, Handed = 3;

        [ThreadStatic]
        private static Worker? _current;

        private readonly SemaphoreSlim _wake = new(0, 1);
        private Action<object?>? _work = work;
        private object? _state = state;
        private object? _running; // the state of the call this thread runs now (only this thread reads or writes it)
        private bool _offered; // parked before its call returned (OfferEarly); only this thread reads or writes it
        private int _status = Running;

        /// <summary>The worker whose thread this is; null on any other thread.</summary>
        public static Worker? Current => _current;

        /// <summary>Blocked on its semaphore (for tests).</summary>
        public bool IsBlocked => Volatile.Read(ref _status) == Blocked;

        /// <summary>Parks the worker while its call finishes, when that call is the one dispatched with
        /// <paramref name="state"/> and it was not offered yet: a call handed now runs once this one returns. Called on
        /// this worker's thread only.</summary>
        public void OfferEarly(object? state)
        {
            if (_offered || state is null || !ReferenceEquals(_running, state))
            {
                return;
            }

            _offered = true;
            Volatile.Write(ref _status, Watching);
            owner.Park(this);
        }

        /// <summary>Gives the worker its next call; the Dispatch that claimed it calls this once.</summary>
        public void Hand(Action<object?> work, object? state)
        {
            _work = work;
            _state = state;
            if (Interlocked.Exchange(ref _status, Handed) == Blocked) // a full fence: the fields are published first
            {
                _wake.Release();
            }
        }

        public void Run()
        {
            _current = this;
            while (true)
            {
                var (work, state) = (_work!, _state);
                _work = null;
                _state = null;
                _running = state;
                work(state); // the scheduler's call handles its own exceptions, as thread-pool work must
                _running = null;
                if (_offered)
                {
                    _offered = false; // parked already, perhaps handed its next call meanwhile
                }
                else
                {
                    Volatile.Write(ref _status, Watching); // before parking: a Dispatch may hand it a call once it is parked
                    owner.Park(this);
                }

                if (!WaitForCall())
                {
                    Dispose(); // retired: nobody can hand it a call any more
                    return;
                }
            }
        }

        public void Dispose() => _wake.Dispose();

        /// <summary>Waits until a call is handed (true), or retires after the idle timeout (false).</summary>
        private bool WaitForCall()
        {
            if (!WatchForHand() && Interlocked.CompareExchange(ref _status, Blocked, Watching) == Watching && !_wake.Wait(owner._idleTimeout))
            {
                if (owner.TryRetire(this))
                {
                    return false;
                }

                _wake.Wait(); // a Dispatch claimed this worker just as it timed out: its call is on the way
            }

            Volatile.Write(ref _status, Running);
            return true;
        }

        /// <summary>Spins until a call is handed (true) or the owner's spin time has passed (false); does not spin when the
        /// owner's watching threads are at their bound. Reading the state is an acquire: the handed call's fields are read
        /// after it.</summary>
        private bool WatchForHand()
        {
            long spinTicks = owner._spinTicks;
            if (spinTicks == 0 || !owner._watching.TryEnter(owner._maxWatching))
            {
                return Volatile.Read(ref _status) == Handed;
            }

            try
            {
                long start = Stopwatch.GetTimestamp();
                for (int i = 1; ; i++)
                {
                    if (Volatile.Read(ref _status) == Handed)
                    {
                        return true;
                    }

                    Thread.SpinWait(1);
                    if ((i & 15) == 0 && Stopwatch.GetTimestamp() - start > spinTicks) // the clock read every 16 spins
                    {
                        return false;
                    }
                }
            }
            finally
            {
                owner._watching.Exit();
            }
        }
    }

    /// <summary>The number of threads watching now, with 128 bytes (a line and the one the processor may fetch with it)
    /// either side.</summary>
    [StructLayout(LayoutKind.Explicit, Size = (2 * Prefetch.PairBytes) + 16)]
    private sealed class WatchingCount
    {
        [FieldOffset(Prefetch.PairBytes)]
        private int _count;

        [FieldOffset(Prefetch.PairBytes + 8)]
        private long _skipped;

        public long Skipped => Interlocked.Read(ref _skipped);

        /// <summary>Counts one more watching thread, unless <paramref name="max"/> already watch.</summary>
        public bool TryEnter(int max)
        {
            if (Volatile.Read(ref _count) < max)
            {
                if (Interlocked.Increment(ref _count) <= max)
                {
                    return true;
                }

                Interlocked.Decrement(ref _count); // lost a race for the last place
            }

            Interlocked.Increment(ref _skipped);
            return false;
        }

        public void Exit() => Interlocked.Decrement(ref _count);
    }
}
