using System.Buffers;
using ERCache.Diagnostics;
using ERCache.Inference;
using ERCache.Tiers;

namespace ERCache.Models;

/// <summary>
/// One model version frozen for the requests that read it, and the request contract (DESIGN §2) applied to it, rule by
/// rule, in this file: a request reads one instance from start to end, so a reload never mixes settings within it.
/// </summary>
/// <remarks>
/// <para>The rules, where they live:</para>
/// <list type="number">
/// <item>Direct tier: <see cref="TryServeDirect"/>, a hit younger than the direct TTL, no inference.</item>
/// <item>Regional tier: the seam in <see cref="ServeMissesAsync"/> between the direct misses and inference (see below).</item>
/// <item>Inference: <see cref="ServeMissesAsync"/> hands the misses to the <see cref="InferenceScheduler"/> (coalesced,
/// batched, bounded) and waits until the caller's deadline.</item>
/// <item>Success: <see cref="Accept"/> validates a row (<see cref="FailureClassifier.OfRow"/>), writes it to both local
/// tiers stamped with the call's completion (late results too when <c>WriteLateResults</c>), and returns it.</item>
/// <item>Failure: <see cref="Complete"/> classifies what did not finish (<see cref="FailureClassifier.OfUnfinished"/>);
/// <see cref="ServeFailure"/> reads the failover tier.</item>
/// <item>Fallback: <see cref="ServeFailure"/> writes the default vector or zeros, never another user's data.</item>
/// <item>A failover hit is only copied to the caller; nothing here writes it to a tier.</item>
/// <item>Version: the tiers belong to this version; a new version gets new tiers (<see cref="ModelRegistry"/>).</item>
/// </list>
/// <para>How a remote (regional) tier plugs in: <see cref="ServeMissesAsync"/> already holds a request's misses as one
/// batch, so the tier is asked for all of them in one round trip, bounded by the same deadline, before
/// <see cref="InferenceScheduler.Submit"/>; what it returns younger than the direct TTL is copied into
/// <c>destination</c>, answered as a regional hit and written into both local tiers with its own write time; the rest
/// go on to inference. On the success path, <see cref="Accept"/> (which runs once per fresh row, off the caller's
/// path once a caller has given up) queues the row for an asynchronous, grouped write. On the failure path,
/// <see cref="ServeFailure"/> asks the remote tier after the local failover tier. Hosts share no monotonic clock, so a
/// remote entry carries a wall-clock stamp (<see cref="TimeProvider.GetUtcNow"/>), turned into a local timestamp as
/// <c>now - (utcNow - stamp)</c> when it is read. See <see cref="IRemoteTier"/>.</para>
/// </remarks>
internal sealed class ModelRuntime : IInferenceResultSink
{
    private readonly TimeProvider _time;
    private readonly ERCacheMetrics _metrics;

    public ModelRuntime(ModelPolicy policy, EmbeddingTier? direct, EmbeddingTier? failover, IEmbeddingInference inference, InferenceScheduler scheduler, TimeProvider time, ERCacheMetrics metrics)
    {
        _time = time;
        _metrics = metrics;
        Policy = policy;
        Direct = direct;
        Failover = failover;
        Inference = inference;
        Scheduler = scheduler;
        long frequency = time.TimestampFrequency;
        InferenceTimeout = ToTimestampTicks(policy.InferenceTimeout, frequency);
        DirectTtl = ToTimestampTicks(policy.Direct.Ttl, frequency);
        FailoverTtl = ToTimestampTicks(policy.Failover.Ttl, frequency);
    }

    public ModelPolicy Policy { get; }

    public EmbeddingTier? Direct { get; }

    public EmbeddingTier? Failover { get; }

    public IEmbeddingInference Inference { get; }

    /// <summary>Runs this model version's inference; shared by every runtime of the same version and dimensions.</summary>
    public InferenceScheduler Scheduler { get; }

    /// <summary>The caller's deadline in <see cref="TimeProvider.GetTimestamp"/> units.</summary>
    public long InferenceTimeout { get; }

    /// <summary>Direct TTL in <see cref="TimeProvider.GetTimestamp"/> units.</summary>
    public long DirectTtl { get; }

    /// <summary>Failover TTL in <see cref="TimeProvider.GetTimestamp"/> units.</summary>
    public long FailoverTtl { get; }

    /// <summary>Rule 1: copies a direct-tier entry younger than the direct TTL into <paramref name="destination"/>.
    /// Completes synchronously and allocates nothing.</summary>
    public bool TryServeDirect(long userId, long now, Span<float> destination, out EmbeddingResult result)
    {
        if (Direct is { } direct && direct.TryRead(userId, now, DirectTtl, destination, out long writtenAt))
        {
            result = new EmbeddingResult(EmbeddingSource.Direct, Age(writtenAt, now), Policy.Version, InferenceFailureCause.None, hasVector: true);
            _metrics.RecordResult(Policy.Name, result);
            return true;
        }

        result = default;
        return false;
    }

    /// <summary>
    /// Rules 3–6 for a request's direct misses (positions <c>misses[0..missCount)</c> of <paramref name="userIds"/>):
    /// inference until the request's deadline, then each user fresh, failover or fallback. Returns
    /// <paramref name="misses"/> to the pool.
    /// </summary>
    public async Task ServeMissesAsync(
        ReadOnlyMemory<long> userIds, int[] misses, int missCount,
        Memory<float> destination, Memory<EmbeddingResult> results, long now, CancellationToken cancellationToken)
    {
        try
        {
            // (Rule 2, the regional tier, plugs in here: see the remarks.)
            long deadline = now + InferenceTimeout;
            var tickets = new InferenceTicket[missCount];
            Scheduler.Submit(userIds.Span, misses.AsSpan(0, missCount), deadline, tickets, inline: Policy.RunInline);
            if (!AllCompleted(tickets))
            {
                var remaining = Policy.InferenceTimeout - _time.GetElapsedTime(now);
                if (remaining > TimeSpan.Zero)
                {
                    try
                    {
                        await Task.WhenAll(tickets.Select(t => t.Task)).WaitAsync(remaining, _time, cancellationToken).ConfigureAwait(false);
                    }
                    catch (TimeoutException)
                    {
                        // The deadline passed: whatever has not finished is answered from failover or as a fallback.
                    }
                }
            }

            Complete(tickets, misses.AsSpan(0, missCount), userIds.Span, destination.Span, results.Span);
        }
        finally
        {
            ArrayPool<int>.Shared.Return(misses);
        }
    }

    /// <summary>Rule 4: a row of a completed delegate call. Valid rows are written to both tiers, stamped with the
    /// call's completion, unless the result is late and late results are not written.</summary>
    public InferenceOutcome Accept(InferenceBatch batch, int index, long completedAt, long deadline)
    {
        var row = batch.Row(index);
        var cause = FailureClassifier.OfRow(batch.StatusOf(index), row);
        if (cause != InferenceFailureCause.None)
        {
            return new InferenceOutcome(cause, null); // never cached anywhere
        }

        long userId = batch.UserIds.Span[index];
        if (completedAt < deadline || Policy.WriteLateResults)
        {
            Direct?.Write(userId, row, completedAt, DirectTtl);
            Failover?.Write(userId, row, completedAt, FailoverTtl);
        }

        return new InferenceOutcome(InferenceFailureCause.None, row.ToArray());
    }

    /// <summary>Rules 4–6 for every miss once inference finished or the deadline passed.</summary>
    private void Complete(InferenceTicket[] tickets, ReadOnlySpan<int> positions, ReadOnlySpan<long> users, Span<float> destination, Span<EmbeddingResult> results)
    {
        int dims = Policy.Dimensions;
        long now = _time.GetTimestamp();
        Span<int> failures = stackalloc int[8];
        failures.Clear();
        for (int i = 0; i < positions.Length; i++)
        {
            int position = positions[i];
            var row = destination.Slice(position * dims, dims);
            var ticket = tickets[i];
            var outcome = ticket.Task.IsCompletedSuccessfully
                ? ticket.Task.Result
                : new InferenceOutcome(FailureClassifier.OfUnfinished(ticket.Pending?.Started == true), null);
            EmbeddingResult result;
            if (outcome.Cause == InferenceFailureCause.None)
            {
                outcome.Vector.AsSpan().CopyTo(row);
                result = new EmbeddingResult(EmbeddingSource.Fresh, TimeSpan.Zero, Policy.Version, InferenceFailureCause.None, hasVector: true);
            }
            else
            {
                failures[(int)outcome.Cause]++;
                result = ServeFailure(users[position], now, outcome.Cause, row);
            }

            results[position] = result;
            _metrics.RecordResult(Policy.Name, result);
        }

        for (int c = 1; c < failures.Length; c++)
        {
            _metrics.RecordInferenceFailures(Policy.Name, (InferenceFailureCause)c, failures[c]);
        }
    }

    /// <summary>Rules 5–7: the failover tier when it holds an entry younger than the failover TTL, else the fallback.</summary>
    private EmbeddingResult ServeFailure(long userId, long now, InferenceFailureCause cause, Span<float> row)
    {
        if (Failover is { } failover && failover.TryRead(userId, now, FailoverTtl, row, out long writtenAt))
        {
            return new EmbeddingResult(EmbeddingSource.Failover, Age(writtenAt, now), Policy.Version, cause, hasVector: true);
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

    private TimeSpan Age(long writtenAt, long now) => writtenAt >= now ? TimeSpan.Zero : _time.GetElapsedTime(writtenAt, now);

    private static long ToTimestampTicks(TimeSpan span, long frequency)
    {
        var ticks = (Int128)span.Ticks * frequency / TimeSpan.TicksPerSecond;
        return ticks > long.MaxValue ? long.MaxValue : (long)ticks;
    }
}
