namespace ERCache.Inference;

/// <summary>
/// A model's delegate slots (<c>Inference:MaxConcurrency</c>), shared by the schedulers of its versions that run at the
/// same time: the current one and, during a rollout's gradual switch, the next one (the tower is one tower). A
/// scheduler takes a slot before it starts a call and returns it when the delegate returns; when it returns one, the
/// other schedulers get the chance to start their queued work.
/// </summary>
internal sealed class SlotGate
{
    private readonly Lock _membersLock = new();
    private InferenceScheduler[] _members = [];
    private int _inUse;
    private int _max;

    /// <summary>Most slots in use at once; a reload may change it (slots above a lowered limit drain as calls end).</summary>
    public int Max
    {
        get => Volatile.Read(ref _max);
        set => Volatile.Write(ref _max, value);
    }

    /// <summary>Slots in use now.</summary>
    public int InUse => Volatile.Read(ref _inUse);

    /// <summary>Whether a slot is free now (a racy hint; <see cref="TryTake"/> decides).</summary>
    public bool HasFree => Volatile.Read(ref _inUse) < Volatile.Read(ref _max);

    /// <summary>Takes a slot when one is free.</summary>
    public bool TryTake()
    {
        int current = Volatile.Read(ref _inUse);
        while (current < Volatile.Read(ref _max))
        {
            int seen = Interlocked.CompareExchange(ref _inUse, current + 1, current);
            if (seen == current)
            {
                return true;
            }

            current = seen;
        }

        return false;
    }

    /// <summary>Whether a slot is free for a refresh or a drift sample now: two at least, since they never take the last
    /// free slot, which stays for a request (read under the scheduler's lock before its call takes one).</summary>
    public bool HasSpare => Volatile.Read(ref _inUse) < Volatile.Read(ref _max) - 1;

    /// <summary>Returns a slot taken with <see cref="TryTake"/>.</summary>
    public void Release() => Interlocked.Decrement(ref _inUse);

    public void Join(InferenceScheduler scheduler)
    {
        lock (_membersLock)
        {
            _members = [.. _members, scheduler];
        }
    }

    public void Leave(InferenceScheduler scheduler)
    {
        lock (_membersLock)
        {
            _members = [.. _members.Where(m => !ReferenceEquals(m, scheduler))];
        }
    }

    /// <summary>
    /// A slot may be free (a call ended): the schedulers on the gate start work, the one whose most urgent queued user
    /// is most urgent first (a version's misses do not wait behind another's less urgent ones), then background work,
    /// which starts only while no scheduler on the gate has a miss queued.
    /// </summary>
    /// <param name="from">The scheduler whose call just ended, and <paramref name="queued"/> whether it had users queued
    /// then (read under its lock): when it is the gate's only scheduler, that answer is used instead of asking again.</param>
    /// <param name="queued">See <paramref name="from"/>.</param>
    public void Offer(InferenceScheduler? from = null, bool queued = false)
    {
        var members = Volatile.Read(ref _members);
        if (members.Length == 1)
        {
            members[0].OnSlotFreed(ReferenceEquals(members[0], from) ? queued : null);
            return;
        }

        foreach (var member in members.OrderByDescending(m => m.MostUrgentQueued ?? long.MinValue))
        {
            member.Dispatch();
        }

        foreach (var member in members)
        {
            member.StartBackground();
        }
    }

    /// <summary>Whether any scheduler on the gate has a miss queued (background work then waits).</summary>
    public bool AnyQueued
    {
        get
        {
            foreach (var member in Volatile.Read(ref _members))
            {
                if (member.MostUrgentQueued is not null)
                {
                    return true;
                }
            }

            return false;
        }
    }
}
