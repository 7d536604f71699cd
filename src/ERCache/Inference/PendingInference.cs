using ERCache.Internal;

namespace ERCache.Inference;

/// <summary>
/// One user's inference, shared by every caller that misses on the same user while it is pending (coalescing).
/// It is its own completion source (one object per miss rather than two). Its waiters are the cache's own request code,
/// which continues on the thread that completes it (short, never blocking: copies, tier reads, releasing leases); the
/// callers' own continuations are handed to the thread pool at the request's boundary
/// (<see cref="ERCache.Internal.CallerContinuation"/>), so no caller's code runs on an inference thread.
/// </summary>
/// <remarks>
/// <para>Continuing inline saves a thread hop per miss: the callers are answered by the thread that finished the call,
/// and a caller blocked on the result is woken from there directly. So this is never completed under a lock of the
/// scheduler: the waiters' code would run under it.</para>
/// <para>The caller that created it (its creator) hands over the row of its own buffer the vector goes to. When nobody else
/// joined by the time the row is accepted, the row is copied straight there (<see cref="TryDeliverToCreator"/>) and
/// no array is made for it: the outcome says <see cref="InferenceOutcome.DeliveredToCreator"/>. From then on nobody
/// may join (there is no vector to share), so a later miss for the user starts an inference of its own. A creator that
/// stops waiting first detaches (<see cref="DetachCreator"/>), after which nothing writes to its buffer.</para>
/// <para>Its own task is the creator's. Callers that join wait on a second task (<see cref="JoinedTask"/>, made by the
/// first of them): the creator's deadline is its own, and the scheduler's <see cref="DeadlineAlarm"/> answers the creator
/// at it (<see cref="TimeOutCreator"/>) while the others go on waiting. So a request that created all its users'
/// inferences waits with no timer of its own.</para>
/// </remarks>
internal sealed class PendingInference(
    long userId, long deadline, BackgroundWork background = BackgroundWork.None, DriftSample? drift = null, Memory<float> creatorRow = default)
    : TaskCompletionSource<InferenceOutcome>(TaskCreationOptions.None) // waiters continue inline (see above)
{
    private const int Open = 0, Writing = 1, Written = 2, Invalidated = 3;

    // The row's delivery: Shared once another caller joined (the waiters need an array), Delivering / Delivered while and
    // once it is copied into the creator's buffer, CreatorGone once the creator stopped waiting.
    private const int NotDelivered = 0, Shared = 1, Delivering = 2, Delivered = 3, CreatorGone = 4;

    private readonly Memory<float> _creatorRow = creatorRow;
    private int _delivery;
    private long _deadline = deadline;
    private int _started;
    private int _writeState;
    private InferenceOutcome _outcome;
    private bool _prepared;
    private TaskCompletionSource<InferenceOutcome>? _joined; // made under the scheduler's lock by the first caller that joins

    public long UserId { get; } = userId;

    /// <summary>The creator's own deadline (timestamp), at which the <see cref="DeadlineAlarm"/> answers it; unlike
    /// <see cref="Deadline"/>, a caller that joins never moves it.</summary>
    public long CreatorDeadline { get; } = deadline;

    /// <summary>The <see cref="DeadlineAlarm"/>'s links, under the scheduler's lock.</summary>
    internal PendingInference? AlarmPrevious, AlarmNext;

    /// <summary>The task of the callers that joined (see <see cref="TryJoin"/>): it completes with the inference, never
    /// at the creator's deadline. Called under the scheduler's lock, after a successful <see cref="TryJoin"/>.</summary>
    public Task<InferenceOutcome> JoinedTask =>
        (_joined ??= new TaskCompletionSource<InferenceOutcome>(TaskCreationOptions.None)).Task; // inline, as this one

    /// <summary>The activity of the request that created it (null when nobody traces): the batch's span links to its
    /// context. A reference rather than the context itself, which would add 32 bytes to every miss.</summary>
    public System.Diagnostics.Activity? Caller { get; init; }

    /// <summary>How much the user needs a slot (see <see cref="MissUrgency"/>): the queue serves larger first.</summary>
    public long Urgency { get; init; } = background == BackgroundWork.None ? MissUrgency.NoFailover : MissUrgency.Background;

    /// <summary>The queue's arrival number, to keep arrival order among equally urgent users.</summary>
    public long Arrival { get; set; }

    /// <summary>Why the scheduler runs it without a caller: a refresh ahead or a drift sample (or neither).</summary>
    public BackgroundWork Background { get; } = background;

    /// <summary>For a drift sample: the vector served, to compare with the fresh one.</summary>
    public DriftSample? Drift { get; } = drift;

    /// <summary>
    /// Claims the right to write this user's result to the tiers. False once <see cref="Invalidate"/> ran: the user was
    /// removed or set while the inference ran, and a result computed before that must not replace it.
    /// </summary>
    public bool TryBeginWrite() => Interlocked.CompareExchange(ref _writeState, Writing, Open) == Open;

    /// <summary>The writes that <see cref="TryBeginWrite"/> claimed are done.</summary>
    public void EndWrite() => Volatile.Write(ref _writeState, Written);

    /// <summary>
    /// Stops the result from being written; when a write is under way, waits for it to finish, so that whatever the
    /// caller removes or writes next comes after it.
    /// </summary>
    public void Invalidate()
    {
        if (Interlocked.CompareExchange(ref _writeState, Invalidated, Open) == Open)
        {
            return;
        }

        var spin = default(SpinWait);
        while (Volatile.Read(ref _writeState) == Writing)
        {
            spin.SpinOnce(); // a few tier writes and one enqueue, never I/O
        }
    }

    /// <summary>The latest deadline (timestamp) of the callers waiting; past it, nobody waits any more.</summary>
    public long Deadline => Interlocked.Read(ref _deadline);

    /// <summary>Whether the user has been handed to the delegate (a caller who gives up before that was shed).</summary>
    public bool Started => Volatile.Read(ref _started) != 0;

    /// <summary>A later caller joins: the item may now wait until that caller's deadline.</summary>
    public void ExtendDeadline(long deadline) => AtomicMax.Raise(ref _deadline, deadline);

    public void MarkStarted() => Volatile.Write(ref _started, 1);

    /// <summary>
    /// Another caller waits for this inference too (coalescing); called under the scheduler's lock. False when the
    /// row was already delivered to the creator alone: there is no vector to share, so the caller needs an inference
    /// of its own.
    /// </summary>
    public bool TryJoin()
    {
        while (true)
        {
            int state = Volatile.Read(ref _delivery);
            if (state is Delivering or Delivered)
            {
                return false;
            }

            if (state != NotDelivered || Interlocked.CompareExchange(ref _delivery, Shared, NotDelivered) == NotDelivered)
            {
                return true;
            }
        }
    }

    /// <summary>
    /// Copies <paramref name="row"/> into the creator's buffer (nothing when it has none: background work) when nobody
    /// joined and the creator still waits. False when the waiters need the row as an array (someone joined, or the
    /// creator stopped waiting).
    /// </summary>
    public bool TryDeliverToCreator(ReadOnlySpan<float> row)
    {
        if (Interlocked.CompareExchange(ref _delivery, Delivering, NotDelivered) != NotDelivered)
        {
            return false;
        }

        if (!_creatorRow.IsEmpty)
        {
            row.CopyTo(_creatorRow.Span);
        }

        Volatile.Write(ref _delivery, Delivered);
        return true;
    }

    /// <summary>
    /// The creator stops waiting (its deadline passed, it was cancelled, or it failed): once this returns, nothing
    /// writes to its buffer any more. Returns true when the row had been delivered into it by then (the creator was
    /// served fresh after all); waits for a copy under way.
    /// </summary>
    public bool DetachCreator()
    {
        var spin = default(SpinWait);
        while (true)
        {
            int state = Volatile.Read(ref _delivery);
            switch (state)
            {
                case Delivered:
                    return true;
                case Delivering:
                    spin.SpinOnce(); // the copy of one row
                    break;
                case CreatorGone:
                    return false;
                default:
                    if (Interlocked.CompareExchange(ref _delivery, CreatorGone, state) == state)
                    {
                        return false;
                    }

                    break;
            }
        }
    }

    /// <summary>Answers the creator and every caller that joined.</summary>
    public void Complete(InferenceOutcome outcome)
    {
        TrySetResult(outcome);
        Volatile.Read(ref _joined)?.TrySetResult(outcome); // joiners joined under the scheduler's lock, taken before this
    }

    /// <summary>
    /// The creator's deadline passed (the scheduler's <see cref="DeadlineAlarm"/>): the creator is answered as a timer of
    /// its own would have answered it. It is served fresh when the row reached its buffer in time, else it learns
    /// whether the inference had started. The inference goes on: its row is still written, and callers that joined still
    /// get it. Nothing when the creator was answered already.
    /// </summary>
    public void TimeOutCreator()
    {
        if (Task.IsCompleted)
        {
            return;
        }

        TrySetResult(OutcomeOnGivingUp(creator: true));
    }

    /// <summary>
    /// The answer for a caller whose wait ended before the inference answered it (its deadline passed, it was cancelled,
    /// or it failed). The creator detaches first and is served fresh when its row arrived in time; otherwise the caller
    /// learns whether the inference had started (a timeout) or not (shed).
    /// </summary>
    public InferenceOutcome OutcomeOnGivingUp(bool creator) =>
        creator && DetachCreator() ? InferenceOutcome.DeliveredToCreator : new InferenceOutcome(FailureClassifier.OfUnfinished(Started), null);

    /// <summary>Records the outcome to complete with later (after the user leaves the pending map); the first one
    /// recorded stands. Only the batch that started the user calls it.</summary>
    public void Prepare(InferenceOutcome outcome)
    {
        if (!_prepared)
        {
            _outcome = outcome;
            _prepared = true;
        }
    }

    /// <summary>Completes with the prepared outcome (an error if none was: never leave a caller waiting).</summary>
    public void CompletePrepared() =>
        Complete(_prepared ? _outcome : new InferenceOutcome(InferenceFailureCause.Error, null));
}
