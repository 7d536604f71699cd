using ERCache.Diagnostics;
using ERCache.Inference;
using ERCache.Internal;
using ERCache.Regional;
using ERCache.Tiers;
using Microsoft.Extensions.Logging;

namespace ERCache.Models;

/// <summary>
/// Everything one (model, version, dimensions) owns across reloads: its tiers, its scheduler (built with this state as
/// its result sink), the write fence that orders removals and pushes against writes already under way, its regional
/// field, and the health counts of the model. A reload that keeps the version swaps the settings snapshot
/// (<see cref="Current"/>) and nothing else; a new version or dimension count gets a new state, and the old one is
/// released once its last request ends.
/// </summary>
/// <remarks>
/// The write fence lives here, not in the snapshot, because the tiers it guards outlive snapshots: a regional lookup
/// that began under one snapshot and a removal that ran under the next must see the same fence, or the lookup would put
/// the removed vector back into the tiers both share.
/// </remarks>
internal sealed class ModelVersionState : IInferenceResultSink
{
    private readonly LeaseCount _leases;
    private readonly TimeProvider _time;
    private readonly ERCacheMetrics _metrics;
    private readonly RegionalTier? _regional;
    private ModelRuntime? _current;
    private ModelVersionState? _next; // a rollout's next version, warmed on this version's spare slots
    private RolloutWarmer? _warmer;

    // While a snapshot is restored: the users removed since it began (bounded by the removals of the load's few seconds).
    private System.Collections.Concurrent.ConcurrentDictionary<long, bool>? _restoreRemovals;

    // Bumped by every removal, clear and pushed vector: a regional lookup that began before one must not leave the
    // older value it read in the local tiers (it checks after writing, and takes the value out again).
    private int _writeFence;

    public ModelVersionState(
        ModelPolicy policy, IEmbeddingInference inference, ResultCounts results, TimeProvider time, ERCacheMetrics metrics, ILogger logger,
        InferenceDispatcher dispatcher, RegionalTier? regional, Random sampling, SlotGate? gate = null)
    {
        _leases = new LeaseCount(Release);
        Sampling = sampling;
        Name = policy.Name;
        Version = policy.Version;
        Inference = inference;
        Results = results;
        RegionalField = RegionalValue.Field(policy.Name, policy.Version);
        _time = time;
        _metrics = metrics;
        _regional = regional;
        Scheduler = new InferenceScheduler(time, metrics, logger, dispatcher, inference, this, policy, gate);
        InvalidRows = new InvalidRowLog(logger, time, policy.Name);
        RefusedValues = new RefusedValueLog(logger, time, policy.Name);
    }

    public string Name { get; }

    public string Version { get; }

    /// <summary>Where drift sampling draws from: <see cref="Random.Shared"/>, or a test's seeded source.</summary>
    public Random Sampling { get; }

    /// <summary>The model's inference, resolved once per model name.</summary>
    public IEmbeddingInference Inference { get; }

    /// <summary>Results served under this model name, by source (the registry hands the same counts to the model's next
    /// version and to the version that replaces it), for the health check and the requests counter.</summary>
    public ResultCounts Results { get; }

    /// <summary>Logs the rows the delegate got wrong, a few lines a minute at most.</summary>
    public InvalidRowLog InvalidRows { get; }

    /// <summary>Logs why regional values were refused, a few lines a minute at most.</summary>
    public RefusedValueLog RefusedValues { get; }

    /// <summary>Runs this version's inference; its rows come back to <see cref="Accept"/>.</summary>
    public InferenceScheduler Scheduler { get; }

    /// <summary>The field this version's values have in the regional store.</summary>
    public string RegionalField { get; }

    /// <summary>The settings in force and the tiers they use; a request reads it once and keeps it to the end.</summary>
    public ModelRuntime Current => Volatile.Read(ref _current)!;

    /// <summary>The write fence's value now (see <see cref="AdvanceWriteFence"/>).</summary>
    public int WriteFence => Volatile.Read(ref _writeFence);

    /// <summary>The rollout's next version while one is configured: its own tiers and scheduler, warmed on this version's
    /// spare slots, never served as this version.</summary>
    public ModelVersionState? Next => Volatile.Read(ref _next);

    /// <summary>The warmer of <see cref="Next"/>, for the warm-share gauge.</summary>
    public RolloutWarmer? Warmer => Volatile.Read(ref _warmer);

    /// <summary>Makes <paramref name="next"/> (published already) the version this one warms, or stops warming with null.
    /// Returns the previous next version, which the registry retires unless it keeps it.</summary>
    public ModelVersionState? SetNext(ModelVersionState? next)
    {
        var previous = Interlocked.Exchange(ref _next, next);
        if (ReferenceEquals(previous, next))
        {
            Scheduler.StartBackground(); // a reload may have raised the rollout's limits
            return previous;
        }

        Interlocked.Exchange(ref _warmer, null)?.Dispose();
        if (next is not null && !IsRetired)
        {
            var warmer = new RolloutWarmer(this, next, _time, _metrics);
            Volatile.Write(ref _warmer, warmer);
            Scheduler.SetBackgroundSource(warmer);
        }

        return previous;
    }

    /// <summary>Starts tracking removals and clears for a snapshot being restored into this version's tiers: the restore
    /// asks <see cref="IsRemovedSinceRestoreBegan"/> under each tier's write lock before it writes an entry.</summary>
    public void BeginRestore() => Volatile.Write(ref _restoreRemovals, new System.Collections.Concurrent.ConcurrentDictionary<long, bool>());

    /// <summary>The restore is over: removals are no longer tracked.</summary>
    public void EndRestore() => Volatile.Write(ref _restoreRemovals, null);

    /// <summary>Whether <paramref name="userId"/> was removed, or the model cleared, since <see cref="BeginRestore"/>.</summary>
    public bool IsRemovedSinceRestoreBegan(long userId) =>
        Volatile.Read(ref _restoreRemovals) is { } removed && (removed.ContainsKey(userId) || removed.ContainsKey(AllUsers));

    /// <summary>Called by a removal before it touches the local tiers (a clear passes <see cref="AllUsers"/>).</summary>
    public void NoteRemoved(long userId) => Volatile.Read(ref _restoreRemovals)?.TryAdd(userId, true);

    /// <summary>The key a clear records: every user.</summary>
    public const long AllUsers = long.MinValue;

    /// <summary>Whether the registry has let go of this state (a newer version or the model's removal).</summary>
    public bool IsRetired => _leases.IsClosed;

    /// <summary>Whether a reload to <paramref name="policy"/> keeps this state (same version and dimensions).</summary>
    public bool Serves(ModelPolicy policy) => policy.KeepsVectorsOf(Current.Policy);

    /// <summary>Called by every removal, clear and push, after it stops inference from writing and before it touches the
    /// local tiers: a lookup that read the fence before this takes its value back out.</summary>
    public void AdvanceWriteFence() => Interlocked.Increment(ref _writeFence);

    /// <summary>Builds the snapshot for <paramref name="policy"/> without publishing it: a tier whose storage settings
    /// (enabled, capacity, eviction, format) are unchanged is kept with its vectors, any other is new and empty.</summary>
    public ModelRuntime Prepare(ModelPolicy policy)
    {
        var previous = Volatile.Read(ref _current);
        var direct = previous is not null && previous.Policy.Direct.SameStorageAs(policy.Direct)
            ? previous.Direct
            : TierFactory.Create(policy, policy.Direct, _metrics);
        var failover = previous is not null && previous.Policy.Failover.SameStorageAs(policy.Failover)
            ? previous.Failover
            : TierFactory.Create(policy, policy.Failover, _metrics);
        return new ModelRuntime(this, policy, direct, failover, policy.RegionalEnabled ? _regional : null, _time, _metrics);
    }

    /// <summary>Publishes a snapshot from <see cref="Prepare"/>; a tier it replaced is released (a request still
    /// holding the old snapshot reads it as empty).</summary>
    public void Publish(ModelRuntime next)
    {
        Scheduler.Configure(next.Policy);
        var previous = Interlocked.Exchange(ref _current, next);
        if (previous is not null)
        {
            ReleaseTiersNotIn(previous, next);
        }
    }

    /// <summary>Releases what a prepared snapshot created and will never publish (a reload rejected after
    /// <see cref="Prepare"/>).</summary>
    public void Discard(ModelRuntime prepared)
    {
        var current = Volatile.Read(ref _current);
        if (current is null)
        {
            prepared.Direct?.Dispose();
            prepared.Failover?.Dispose();
        }
        else if (!ReferenceEquals(current, prepared))
        {
            ReleaseTiersNotIn(prepared, current);
        }
    }

    /// <summary>Counts a request that goes past the direct tier; false once the state is retired (the caller resolves the
    /// model again).</summary>
    public bool TryEnter() => _leases.TryAcquire();

    /// <summary>Ends a request counted by <see cref="TryEnter"/>; the last one after retirement releases the state.</summary>
    public void Exit() => _leases.Release();

    /// <summary>The registry lets go of this state: nothing new enters, and it is released once the last request
    /// in it ends (here, when none runs).</summary>
    public void Retire() => _leases.Close();

    /// <inheritdoc />
    public InferenceOutcome Accept(InferenceBatch batch, int index, long startedAt, long completedAt, PendingInference item) =>
        Current.Accept(batch, index, startedAt, completedAt, item);

    /// <summary>Stops the scheduler (queued users get an error, calls in flight write nothing) and releases the tiers.</summary>
    private void Release()
    {
        Interlocked.Exchange(ref _warmer, null)?.Dispose();
        Scheduler.Dispose();
        var current = Current;
        current.Direct?.Dispose();
        current.Failover?.Dispose();
    }

    private static void ReleaseTiersNotIn(ModelRuntime old, ModelRuntime kept)
    {
        if (old.Direct is { } direct && !ReferenceEquals(direct, kept.Direct))
        {
            direct.Dispose();
        }

        if (old.Failover is { } failover && !ReferenceEquals(failover, kept.Failover))
        {
            failover.Dispose();
        }
    }
}
