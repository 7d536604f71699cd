using System.Diagnostics;
using System.Runtime.CompilerServices;
using ERCache.Diagnostics;
using ERCache.Inference;
using ERCache.Internal;
using ERCache.Regional;
using ERCache.Tiers;

namespace ERCache.Models;

/// <summary>
/// One snapshot of a model version's settings and the tiers they use, and the request contract (DESIGN §2) applied to
/// it, rule by rule, in this file: a request reads one instance from start to end, so a reload never mixes settings
/// within it. What outlives a snapshot (scheduler, write fence, health) belongs to its <see cref="ModelVersionState"/>.
/// </summary>
/// <remarks>
/// <para>The rules, where they live:</para>
/// <list type="number">
/// <item>Direct tier: <see cref="TryServeDirect(long, long, long, Span{float}, out EmbeddingResult)"/>, a hit younger than the direct TTL, no inference.</item>
/// <item>Regional tier: <see cref="ServeRegionalAsync"/>, one round trip for the request's direct misses, before inference.</item>
/// <item>Inference: <see cref="ServeMissesAsync"/> hands the misses to the <see cref="InferenceScheduler"/> (coalesced,
/// batched, bounded) and waits until the caller's deadline.</item>
/// <item>Success: <see cref="Accept"/> validates a row (<see cref="FailureClassifier.OfRow"/>), writes it to both local
/// tiers stamped with the call's completion (late results too when <c>WriteLateResults</c>), and returns it.</item>
/// <item>Failure: <see cref="Complete"/> classifies what did not finish (<see cref="FailureClassifier.OfUnfinished"/>);
/// <see cref="ServeFailure"/> reads the local failover tier, then the regional value the lookup found.</item>
/// <item>Fallback: <see cref="ServeFailure"/> writes the default vector or zeros, never another user's data.</item>
/// <item>A failover hit is only copied to the caller; nothing here writes it to a tier.</item>
/// <item>Version: the tiers belong to this version's <see cref="ModelVersionState"/>; a new version gets a new state with
/// new tiers (<see cref="ModelRegistry"/>).</item>
/// </list>
/// <para>The regional tier: a lookup before inference (<see cref="ServeRegionalAsync"/>); a fresh row queued for an
/// asynchronous, grouped write (<see cref="Accept"/>); a regional value too old for the direct TTL but younger than the
/// failover TTL kept for the failure path. Hosts share no monotonic clock, so regional values carry a wall-clock stamp
/// (<see cref="TimeProvider.GetUtcNow"/>); a value read is written into the local tiers stamped <c>now - age</c>, so
/// its TTL counts from the inference that produced it, on every host.</para>
/// </remarks>
internal sealed partial class ModelRuntime
{
    private readonly TimeProvider _time;
    private readonly ERCacheMetrics _metrics;
    private readonly InferenceScheduler _scheduler;
    private readonly bool _backgroundWork;
    private readonly TtlClock _clock;
    private readonly double _tickScale; // TimeSpan ticks per timestamp unit, as TimeProvider.GetElapsedTime computes it

    public ModelRuntime(
        ModelVersionState state, ModelPolicy policy, EmbeddingTier? direct, EmbeddingTier? failover, RegionalTier? regional, TimeProvider time,
        ERCacheMetrics metrics)
    {
        State = state;
        _scheduler = state.Scheduler;
        _clock = new TtlClock(time);
        Regional = regional;
        RegionalTimeToLive = policy.Failover.Enabled ? policy.Failover.Ttl : policy.Direct.Ttl;
        _time = time;
        _metrics = metrics;
        Policy = policy;
        Direct = direct;
        Failover = failover;
        long frequency = time.TimestampFrequency;
        _tickScale = (double)TimeSpan.TicksPerSecond / frequency;
        InferenceTimeout = TimestampTicks.Of(policy.InferenceTimeout, frequency);
        DirectTtl = TimestampTicks.Of(policy.Direct.Ttl, frequency);
        FailoverTtl = TimestampTicks.Of(policy.Failover.Ttl, frequency);
        RefreshAheadAge = policy.RefreshAhead is { } ahead ? (long)(DirectTtl * ahead) : long.MaxValue;
        _backgroundWork = policy.RefreshAhead is not null || policy.DriftSampleRate > 0;
        Fingerprint = RegionalValue.Fingerprint(policy.Name, policy.Version, policy.Dimensions, policy.RegionalFormat);
    }

    /// <summary>The model version this snapshot belongs to: its scheduler, write fence and health.</summary>
    public ModelVersionState State { get; }

    /// <summary>Now, for TTL checks: the <see cref="TtlClock"/>, whose readings every entry's stamp comes from.</summary>
    public long TtlNow => _clock.Now;

    /// <summary>Age (timestamp units) after which a direct hit queues a refresh ahead; <see cref="long.MaxValue"/> when off.</summary>
    public long RefreshAheadAge { get; }

    public ModelPolicy Policy { get; }

    public EmbeddingTier? Direct { get; }

    public EmbeddingTier? Failover { get; }

    /// <summary>The regional tier, when a store is registered and the model uses it.</summary>
    public RegionalTier? Regional { get; }

    /// <summary>The field this model version's values have in the regional store.</summary>
    public string RegionalField => State.RegionalField;

    /// <summary>The fingerprint of regional values under these settings (model, version, dimensions, regional format:
    /// per snapshot, so a reloaded <c>Regional:Format</c> writes and expects values of the new format).</summary>
    public ulong Fingerprint { get; }

    /// <summary>How long the regional store keeps this model's values: its failover TTL (direct TTL without one).</summary>
    public TimeSpan RegionalTimeToLive { get; }

    /// <summary>The caller's deadline in <see cref="TimeProvider.GetTimestamp"/> units.</summary>
    public long InferenceTimeout { get; }

    /// <summary>Direct TTL in <see cref="TimeProvider.GetTimestamp"/> units.</summary>
    public long DirectTtl { get; }

    /// <summary>Failover TTL in <see cref="TimeProvider.GetTimestamp"/> units.</summary>
    public long FailoverTtl { get; }

    /// <summary>Rule 1: copies a direct-tier entry younger than the direct TTL into <paramref name="destination"/>.
    /// Completes synchronously and allocates nothing. <paramref name="now"/> is a <see cref="TtlNow"/> reading.</summary>
    public bool TryServeDirect(long userId, long now, Span<float> destination, out EmbeddingResult result) =>
        TryServeDirect(userId, now, DirectTtl, destination, out result);

    /// <summary>Rule 1 with a TTL of the caller's (<see cref="EmbeddingRequestOptions.MaxAge"/>, never longer than the
    /// direct TTL).</summary>
    public bool TryServeDirect(long userId, long now, long ttl, Span<float> destination, out EmbeddingResult result)
    {
        if (TryReadDirect(userId, now, ttl, destination, out result))
        {
            Record(result);
            return true;
        }

        return false;
    }

    /// <summary>Rule 1 without counting the hit: a batch counts its hits together (<see cref="CountDirectHits"/>).</summary>
    public bool TryReadDirect(long userId, long now, long ttl, Span<float> destination, out EmbeddingResult result)
    {
        ttl = TrustedTtl(now, ttl); // a vector written before the invalidation subscription was lost is checked regionally
        if (Direct is { } direct && direct.TryRead(userId, now, ttl, destination, out long writtenAt))
        {
            result = new EmbeddingResult(EmbeddingSource.Direct, Age(writtenAt, now), Policy.Version, InferenceFailureCause.None, hasVector: true);
            if (_backgroundWork)
            {
                OnDirectHit(userId, now, writtenAt, destination);
            }

            return true;
        }

        result = default;
        return false;
    }

    /// <summary><see cref="TryReadDirect(long, long, long, Span{float}, out EmbeddingResult)"/> of a batch's user, starting
    /// at the slot the batch's prefetch found (<see cref="EmbeddingTier.TryReadFrom"/>). Written out rather than shared
    /// with the single-user read: a helper between them changed what the JIT inlines into the hottest path.</summary>
    public bool TryReadDirect(long userId, int candidate, long now, long ttl, Span<float> destination, out EmbeddingResult result)
    {
        ttl = TrustedTtl(now, ttl);
        if (Direct is { } direct && direct.TryReadFrom(candidate, userId, now, ttl, destination, out long writtenAt))
        {
            result = new EmbeddingResult(EmbeddingSource.Direct, Age(writtenAt, now), Policy.Version, InferenceFailureCause.None, hasVector: true);
            if (_backgroundWork)
            {
                OnDirectHit(userId, now, writtenAt, destination);
            }

            return true;
        }

        result = default;
        return false;
    }

    /// <summary>
    /// <paramref name="ttl"/>, shortened while the invalidation subscription is lost so that no local vector written
    /// before the loss counts as fresh (DESIGN §2 rule 11): a removal made elsewhere meanwhile never reached this host.
    /// Applies to both local tiers; the regional store, which remembers removals, answers instead.
    /// </summary>
    private long TrustedTtl(long now, long ttl) =>
        Regional?.DistrustBefore is { } distrust && distrust != long.MinValue ? Math.Min(ttl, now - distrust) : ttl;

    /// <summary>The direct TTL a call with <paramref name="options"/> applies: <see cref="EmbeddingRequestOptions.MaxAge"/>
    /// when stricter, zero (nothing is fresh enough) with <see cref="EmbeddingRequestOptions.ForceRefresh"/>.</summary>
    public long DirectTtlFor(EmbeddingRequestOptions options)
    {
        if (options.ForceRefresh)
        {
            return 0;
        }

        return options.MaxAge is { } maxAge ? Math.Min(DirectTtl, TimestampTicks.Of(maxAge, _time.TimestampFrequency)) : DirectTtl;
    }

    /// <summary>
    /// Rules 3–6 for a request's direct misses (positions <c>misses[0..missCount)</c> of <paramref name="userIds"/>):
    /// inference until the request's deadline, then each user fresh, failover or fallback. The caller keeps
    /// <paramref name="misses"/>: nothing here holds it once this completes.
    /// </summary>
    public async Task ServeMissesAsync(
        ReadOnlyMemory<long> userIds, int[] misses, int missCount,
        Memory<float> destination, Memory<EmbeddingResult> results, EmbeddingRequestOptions options, CancellationToken cancellationToken)
    {
        long now = _time.GetTimestamp(); // the deadline counts from here, on the precise clock
        InferenceTicket[]? tickets = null;
        try
        {
            Dictionary<int, RegionalFailoverValue>? regionalFailover = null;
            long submitted = now;
            if (Regional is { } regional && !options.ForceRefresh)
            {
                (missCount, regionalFailover) = await ServeRegionalAsync(
                    regional, userIds, misses, missCount, destination, results, now, DirectTtlFor(options), cancellationToken).ConfigureAwait(false);
                if (missCount == 0)
                {
                    return;
                }

                submitted = _time.GetTimestamp(); // after a round trip
            }

            if (missCount == 1 && _scheduler.CallsStartOnCallerThread)
            {
                // Its row will be written once the inference returns, on this thread: the slot it takes starts loading
                // meanwhile. Not when another thread makes the call: the lines loaded here would only be taken back from
                // this core's cache by that thread's write.
                long userId = userIds.Span[misses[0]];
                Direct?.PrefetchWrite(userId);
                Failover?.PrefetchWrite(userId);
            }

            long deadline = now + InferenceTimeout;
            tickets = new InferenceTicket[missCount];
            var urgencies = Urgencies(userIds.Span, misses.AsSpan(0, missCount), regionalFailover);
            await _scheduler.SubmitAsync(
                userIds, misses.AsMemory(0, missCount), destination, submitted, deadline, tickets, Policy.RunInline, urgencies, cancellationToken).ConfigureAwait(false);

            if (!AllCompleted(tickets))
            {
                var remaining = Policy.InferenceTimeout - _time.GetElapsedTime(now);
                if (remaining > TimeSpan.Zero)
                {
                    try
                    {
                        Task all = tickets.Length == 1 ? tickets[0].Task : Task.WhenAll(tickets.Select(t => t.Task)); // one miss: no combined task
                        // When only this request's own inferences are waited for, the scheduler's alarm answers them at the
                        // deadline: no timer here (and no promise when the token cannot be cancelled: WaitAsync returns `all`).
                        await (OnlyCreatorsWait(tickets) ? all.WaitAsync(cancellationToken) : all.WaitAsync(remaining, _time, cancellationToken))
                            .ConfigureAwait(false);
                    }
                    catch (TimeoutException)
                    {
                        // The deadline passed: whatever has not finished is answered from failover or as a fallback.
                    }
                }
            }

            Complete(tickets, misses.AsSpan(0, missCount), userIds.Span, destination.Span, results.Span, options.SkipFailover ? null : regionalFailover, options.SkipFailover);
        }
        finally
        {
            if (tickets is not null)
            {
                DetachCreators(tickets); // cancelled or failed before Complete: no row may reach the caller's buffer after this
            }
        }
    }

    /// <summary>Detaches this request from every inference it created that has not completed, so nothing writes to its
    /// buffer once it returns. Rows already delivered stay (the request is ending anyway).</summary>
    private static void DetachCreators(InferenceTicket[] tickets)
    {
        foreach (var ticket in tickets)
        {
            if (ticket.Creator && !ticket.Task.IsCompleted)
            {
                ticket.Pending!.DetachCreator();
            }
        }
    }

    /// <summary>Rule 12: how much each miss needs a slot, should the model be overloaded: a user with no failover vector
    /// (local, or the regional value the lookup found) before one with a vector, older vectors first. Empty when the model
    /// keeps no failover vector at all (every user is alike).</summary>
    private long[] Urgencies(ReadOnlySpan<long> users, ReadOnlySpan<int> positions, Dictionary<int, RegionalFailoverValue>? regionalFailover)
    {
        if (Failover is null && regionalFailover is null)
        {
            return [];
        }

        var urgencies = new long[positions.Length];
        long now = _clock.Now;
        long nowUtc = regionalFailover is null ? 0 : _time.GetUtcNow().ToUnixTimeMilliseconds();
        long failoverTtl = TrustedTtl(now, FailoverTtl); // once for the batch, as its clock reading
        for (int i = 0; i < positions.Length; i++)
        {
            if (Failover is { } failover && failover.TryGetWrittenAt(users[positions[i]], now, failoverTtl, out long writtenAt))
            {
                urgencies[i] = MissUrgency.WithFailover(now - writtenAt);
            }
            else if (regionalFailover is not null && regionalFailover.TryGetValue(positions[i], out var value) &&
                RegionalAge(value.WrittenAtUtc, nowUtc).Ticks is var ageTicks && ageTicks < FailoverTtl)
            {
                urgencies[i] = MissUrgency.WithFailover(ageTicks);
            }
            else
            {
                urgencies[i] = MissUrgency.NoFailover;
            }
        }

        return urgencies;
    }

    /// <summary>Rule 4: a row of a completed delegate call. Valid rows are written to both tiers, stamped with the
    /// call's completion, and queued for the regional store stamped with the call's start (<paramref name="startedAt"/>),
    /// unless the result is late and late results are not written, or the user was removed or set while the call ran.
    /// A drift sample's row is compared with the vector served and written nowhere.</summary>
    public InferenceOutcome Accept(InferenceBatch batch, int index, long startedAt, long completedAt, PendingInference item)
    {
        var row = batch.Row(index);
        var cause = FailureClassifier.OfRow(batch.StatusOf(index), row);
        if (cause != InferenceFailureCause.None)
        {
            if (cause == InferenceFailureCause.InvalidVector)
            {
                State.InvalidRows.Report(batch, index);
            }

            return new InferenceOutcome(cause, null); // never cached anywhere
        }

        if (item.Drift is { } sample)
        {
            _metrics.RecordDrift(Policy.Name, Drift(sample.Served, row), sample.Age);
            return new InferenceOutcome(InferenceFailureCause.None, null); // nobody waits for a sample
        }

        long userId = batch.UserIds.Span[index];
        var vector = Regional is null ? null : row.ToArray(); // the regional write queue keeps it
        if ((completedAt < item.Deadline || Policy.WriteLateResults) && item.TryBeginWrite())
        {
            try
            {
                WriteLocal(userId, row, _clock.Now); // the call's completion, on the TTL clock
                if (vector is not null)
                {
                    // Stamped with the call's start: a removal or push that reached the store while the call ran is
                    // newer than this row, so the store keeps it over the row (another host's removal is announced
                    // here only after the store has deleted the user, too late to stop this call).
                    long startedUtcMs = _time.GetUtcNow().ToUnixTimeMilliseconds() - (long)_time.GetElapsedTime(startedAt).TotalMilliseconds;
                    EnqueueRegional(userId, vector, writtenAtUtcMs: startedUtcMs);
                }
            }
            finally
            {
                item.EndWrite();
            }
        }

        // After the writes: a caller who finds the row delivered and starts its own inference finds them done.
        return vector is null && item.TryDeliverToCreator(row)
            ? InferenceOutcome.DeliveredToCreator
            : new InferenceOutcome(InferenceFailureCause.None, vector ?? row.ToArray());
    }

    private void WriteLocal(long userId, ReadOnlySpan<float> row, long writtenAt)
    {
        Direct?.Write(userId, row, writtenAt, DirectTtl);
        Failover?.Write(userId, row, writtenAt, FailoverTtl);
    }

    /// <summary>Whether a metrics listener takes each result's age: then a batch records each hit's as it reads it
    /// (<see cref="RecordHitAge"/>).</summary>
    public bool MeasuresAges => _metrics.AgesEnabled;

    /// <summary>The age of a batch's direct hit (<see cref="TryReadDirect(long, int, long, long, Span{float}, out EmbeddingResult)"/>),
    /// for metrics (the hit itself is counted by <see cref="CountDirectHits"/>).</summary>
    public void RecordHitAge(in EmbeddingResult result) => _metrics.RecordAge(Policy.Name, result);

    /// <summary>Counts a batch's direct hits in one add.</summary>
    public void CountDirectHits(int hits)
    {
        if (hits > 0)
        {
            State.Results.Count(EmbeddingSource.Direct, hits);
        }
    }

    /// <summary>Counts a result (the health check and the requests counter read the counts) and measures its age when a
    /// listener takes it.</summary>
    private void Record(in EmbeddingResult result)
    {
        State.Results.Count(result.Source);
        if (_metrics.AgesEnabled)
        {
            _metrics.RecordAge(Policy.Name, result);
        }
    }

    /// <summary>Rules 4–6 for every miss once inference finished or the deadline passed.</summary>
    private void Complete(
        InferenceTicket[] tickets, ReadOnlySpan<int> positions, ReadOnlySpan<long> users, Span<float> destination, Span<EmbeddingResult> results,
        Dictionary<int, RegionalFailoverValue>? regionalFailover, bool skipFailover)
    {
        int dims = Policy.Dimensions;
        long now = _clock.Now;
        var failureCounts = default(FailureCounts); // not stackalloc: see FailureCounts
        Span<int> failures = failureCounts;
        bool anyFailed = false;
        for (int i = 0; i < positions.Length; i++)
        {
            int position = positions[i];
            var row = destination.Slice(position * dims, dims);
            var ticket = tickets[i];
            var outcome = ticket.Task.IsCompletedSuccessfully ? ticket.Task.Result
                : ticket.Pending?.OutcomeOnGivingUp(ticket.Creator)
                  ?? new InferenceOutcome(FailureClassifier.OfUnfinished(started: false), null); // refused at once, never queued
            EmbeddingResult result;
            if (outcome.Cause == InferenceFailureCause.None)
            {
                Debug.Assert(outcome.Vector is not null || ticket.Creator, "only the creator's row is delivered without an array");
                outcome.Vector?.AsSpan().CopyTo(row); // null: already in the row (delivered to this request, the creator)
                result = new EmbeddingResult(EmbeddingSource.Fresh, TimeSpan.Zero, Policy.Version, InferenceFailureCause.None, hasVector: true);
            }
            else
            {
                failures[(int)outcome.Cause]++;
                anyFailed = true;
                var kept = regionalFailover is not null && regionalFailover.TryGetValue(position, out var value) ? value : (RegionalFailoverValue?)null;
                result = ServeFailure(users[position], now, outcome.Cause, row, kept, skipFailover);
            }

            results[position] = result;
            Record(result);
        }

        for (int c = 1; anyFailed && c < failures.Length; c++)
        {
            _metrics.RecordInferenceFailures(Policy.Name, (InferenceFailureCause)c, failures[c]);
        }
    }

    /// <summary>Rules 5–7: the local failover tier when it holds an entry younger than the failover TTL (and written
    /// after any loss of the invalidation subscription), else the regional value the lookup found when it is, else the
    /// fallback. A failover hit is never written to a tier.</summary>
    private EmbeddingResult ServeFailure(long userId, long now, InferenceFailureCause cause, Span<float> row, RegionalFailoverValue? regionalValue, bool skipFailover)
    {
        if (!skipFailover && Failover is { } failover && failover.TryRead(userId, now, TrustedTtl(now, FailoverTtl), row, out long writtenAt))
        {
            return new EmbeddingResult(EmbeddingSource.Failover, Age(writtenAt, now), Policy.Version, cause, hasVector: true);
        }

        // The lookup decoded the value; a clear since then still hides it, and its age is taken now.
        if (regionalValue is { } value && value.WrittenAtUtc > Regional!.ClearedAt(RegionalField))
        {
            var (age, ageTicks) = RegionalAge(value.WrittenAtUtc, _time.GetUtcNow().ToUnixTimeMilliseconds());
            if (ageTicks < FailoverTtl)
            {
                value.Vector.CopyTo(row);
                return new EmbeddingResult(EmbeddingSource.Failover, age, Policy.Version, cause, hasVector: true);
            }
        }

        // A failed read may have left part of another entry in the row: overwrite it entirely.
        if (Policy.DefaultVector is { } fallback)
        {
            fallback.Span.CopyTo(row);
        }
        else
        {
            row.Clear();
        }

        return new EmbeddingResult(EmbeddingSource.Fallback, TimeSpan.Zero, Policy.Version, cause, hasVector: Policy.DefaultVector is not null);
    }

    /// <summary>Whether every ticket not completed yet is one this request created: its task completes by the request's
    /// deadline (the scheduler's <see cref="DeadlineAlarm"/>), so the request needs no timer of its own.</summary>
    private static bool OnlyCreatorsWait(InferenceTicket[] tickets)
    {
        foreach (var ticket in tickets)
        {
            if (!ticket.Creator && !ticket.Task.IsCompleted)
            {
                return false;
            }
        }

        return true;
    }

    private static bool AllCompleted(InferenceTicket[] tickets)
    {
        foreach (var ticket in tickets)
        {
            if (!ticket.Task.IsCompleted)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>What <see cref="TimeProvider.GetElapsedTime(long, long)"/> returns, to the tick, without reading the
    /// provider's frequency again (a virtual call on every hit).</summary>
    private TimeSpan Age(long writtenAt, long now) => writtenAt >= now ? TimeSpan.Zero : new TimeSpan((long)((now - writtenAt) * _tickScale));

    /// <summary>A request's failed users by cause (one count per <see cref="InferenceFailureCause"/>). A fixed-size local,
    /// not <c>stackalloc</c>: the runtime compiles a method with a loop and a <c>stackalloc</c> once, optimized but without
    /// tiering's profile data, and <see cref="Complete"/> runs for every request with a miss.</summary>
    [InlineArray(8)]
    private struct FailureCounts
    {
        private int _element;
    }
}
