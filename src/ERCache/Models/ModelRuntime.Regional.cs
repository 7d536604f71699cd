using ERCache.Internal;
using ERCache.Regional;

namespace ERCache.Models;

// Rule 2 and the regional half of rules 4 and 5: the lookup before inference (decoded once, merged into the local
// tiers with the value's original age), the queued write of a fresh vector, and a regional value's age from wall-
// clock stamps.
internal sealed partial class ModelRuntime
{
    /// <summary>
    /// Rule 2: looks the misses up in the regional store in one round trip. A value younger than the direct TTL is a
    /// regional hit: copied to the caller and into both local tiers with its original write time. A value younger than
    /// the failover TTL is kept for the failure path. Returns the misses left for inference (compacted in
    /// <paramref name="misses"/>) and the kept values by position.
    /// </summary>
    private async Task<(int MissCount, Dictionary<int, RegionalFailoverValue>? Failover)> ServeRegionalAsync(
        RegionalTier regional, ReadOnlyMemory<long> userIds, int[] misses, int missCount,
        Memory<float> destination, Memory<EmbeddingResult> results, long now, long directTtl, CancellationToken cancellationToken)
    {
        var users = new long[missCount];
        for (int i = 0; i < missCount; i++)
        {
            users[i] = userIds.Span[misses[i]];
        }

        int fence = State.WriteFence;
        Func<long, bool>? overtaken = null; // checked under each tier's write lock, see EmbeddingTier.TryWriteNewer
        var values = await regional.ReadAsync(RegionalField, RegionalValue.Length(Policy.RegionalFormat, Policy.Dimensions), users, Policy.InferenceTimeout - _time.GetElapsedTime(now), cancellationToken).ConfigureAwait(false);
        if (values is null)
        {
            _metrics.RecordRegionalReads(Policy.Name, "unavailable", missCount);
            return (missCount, null);
        }

        int dims = Policy.Dimensions, left = 0, hits = 0, stale = 0, absent = 0, bad = 0, future = 0, cleared = 0;
        long nowUtc = _time.GetUtcNow().ToUnixTimeMilliseconds();
        long latestServable = nowUtc + regional.MaxClockSkewMs;
        long nowTs = _clock.Now;
        long clearedAt = regional.ClearedAt(RegionalField);
        Dictionary<int, RegionalFailoverValue>? failover = null;
        for (int i = 0; i < missCount; i++)
        {
            int position = misses[i];
            var row = destination.Span.Slice(position * dims, dims);
            var read = DecodeRegional(values[i], users[i], row, clearedAt, latestServable, out long writtenAtUtc);
            if (read == RegionalRead.Absent)
            {
                absent++;
            }
            else if (read == RegionalRead.Refused)
            {
                bad++;
            }
            else if (read == RegionalRead.Cleared)
            {
                absent++; // as good as absent
                cleared++;
            }
            else if (read == RegionalRead.Future)
            {
                future++;
            }
            else
            {
                var (age, ageTicks) = RegionalAge(writtenAtUtc, nowUtc);
                if (ageTicks < directTtl)
                {
                    long writtenAt = nowTs - ageTicks;
                    // Newer wins locally too: an inference or push that landed during the lookup is kept. A removal,
                    // clear or push that ran since the lookup began may postdate this value: it is served to this
                    // request (which began first) but kept out of the tiers, decided under each tier's write lock so
                    // that no later request can find it there.
                    overtaken ??= _ => State.WriteFence != fence;
                    Direct?.TryWriteNewer(users[i], row, writtenAt, DirectTtl, overtaken);
                    Failover?.TryWriteNewer(users[i], row, writtenAt, FailoverTtl, overtaken);

                    var result = new EmbeddingResult(EmbeddingSource.Regional, age, Policy.Version, InferenceFailureCause.None, hasVector: true);
                    results.Span[position] = result;
                    Record(result);
                    hits++;
                    continue;
                }

                stale++;
                if (ageTicks < FailoverTtl)
                {
                    (failover ??= [])[position] = new RegionalFailoverValue(row.ToArray(), writtenAtUtc); // decoded once
                }
            }

            misses[left++] = position;
        }

        State.Results.CountRegional(found: hits + stale + bad + future + cleared, refused: bad);
        _metrics.RecordRegionalReads(Policy.Name, "hit", hits);
        _metrics.RecordRegionalReads(Policy.Name, "stale", stale);
        _metrics.RecordRegionalReads(Policy.Name, "miss", absent);
        _metrics.RecordRegionalReads(Policy.Name, "decode_failure", bad);
        _metrics.RecordRegionalReads(Policy.Name, "future", future);
        return (left, failover);
    }

    /// <summary>
    /// A warm restart beside invalidation (DESIGN §2 rules 10 and 11): copies the store's values of
    /// <paramref name="users"/> (those a snapshot held) into the local tiers, as a regional hit copies one, with each
    /// value's original write time. The store is the truth: a user removed or pushed elsewhere while this host was down
    /// has the store's answer, never the snapshot's row. Written as a snapshot restore writes (the requests' writes go
    /// first, a newer local entry is kept), and not for a user removed, or a model cleared, since the restore began.
    /// One round trip of <c>Regional:MaxBatchSize</c> users at a time, each bounded by <c>Regional:Timeout</c>.
    /// </summary>
    public async Task<RegionalPrefetchCounts> PrefetchRegionalAsync(long[] users, CancellationToken cancellationToken)
    {
        var regional = Regional!;
        int valueBytes = RegionalValue.Length(Policy.RegionalFormat, Policy.Dimensions);
        var counts = default(RegionalPrefetchCounts);
        for (int first = 0; first < users.Length; first += regional.MaxBatchSize)
        {
            var step = users[first..Math.Min(users.Length, first + regional.MaxBatchSize)];
            var values = await regional.ReadAsync(RegionalField, valueBytes, step, regional.WriteTimeout, cancellationToken).ConfigureAwait(false);
            counts += values is null ? new RegionalPrefetchCounts(0, 0, 0, step.Length) : CopyIn(regional, step, values);
        }

        return counts;
    }

    /// <summary>Writes the prefetched <paramref name="values"/> of <paramref name="users"/> (see
    /// <see cref="PrefetchRegionalAsync"/>).</summary>
    private RegionalPrefetchCounts CopyIn(RegionalTier regional, long[] users, byte[]?[] values)
    {
        var row = new float[Policy.Dimensions];
        long nowUtc = _time.GetUtcNow().ToUnixTimeMilliseconds();
        long latestServable = nowUtc + regional.MaxClockSkewMs;
        long nowTs = _clock.Now;
        long clearedAt = regional.ClearedAt(RegionalField);
        long direct = 0, failoverOnly = 0, missing = 0;
        for (int i = 0; i < users.Length; i++)
        {
            if (DecodeRegional(values[i], users[i], row, clearedAt, latestServable, out long writtenAtUtc) != RegionalRead.Usable)
            {
                missing++;
                continue;
            }

            long ageTicks = RegionalAge(writtenAtUtc, nowUtc).Ticks;
            if (ageTicks >= FailoverTtl)
            {
                missing++;
                continue;
            }

            long writtenAt = nowTs - ageTicks;
            if (ageTicks < DirectTtl)
            {
                Direct?.Restore(users[i], row, writtenAt, DirectTtl, State.IsRemovedSinceRestoreBegan);
                direct++;
            }
            else
            {
                failoverOnly++;
            }

            Failover?.Restore(users[i], row, writtenAt, FailoverTtl, State.IsRemovedSinceRestoreBegan);
        }

        return new RegionalPrefetchCounts(direct, failoverOnly, missing, 0);
    }

    /// <summary>What one value read from the regional store is to this model.</summary>
    private enum RegionalRead
    {
        /// <summary>The store holds none.</summary>
        Absent,

        /// <summary>It does not decode as this model's value of this user (reported to the refused-value
        /// log).</summary>
        Refused,

        /// <summary>Written before this host cleared the model.</summary>
        Cleared,

        /// <summary>Stamped by a writer's clock ahead by more than <c>Regional:MaxClockSkew</c>: its age is
        /// unknowable, never fresh.</summary>
        Future,

        /// <summary>Decoded into the row, with its write time.</summary>
        Usable,
    }

    /// <summary>Decodes <paramref name="value"/>, <paramref name="userId"/>'s value read from the store, into
    /// <paramref name="row"/> and judges it: never served unless <see cref="RegionalRead.Usable"/> (then
    /// <paramref name="writtenAtUtc"/> is its wall-clock write time). The rules of a request's lookup and of a
    /// restart's prefetch.</summary>
    private RegionalRead DecodeRegional(byte[]? value, long userId, Span<float> row, long clearedAt, long latestServable, out long writtenAtUtc)
    {
        writtenAtUtc = 0;
        if (value is null)
        {
            return RegionalRead.Absent;
        }

        if (!RegionalValue.TryDecode(value, Policy.RegionalFormat, Fingerprint, userId, row, out writtenAtUtc))
        {
            // Another user's, another version's, truncated or garbage.
            State.RefusedValues.Report(value, Policy.RegionalFormat, Fingerprint, userId, Policy.Dimensions);
            return RegionalRead.Refused;
        }

        return writtenAtUtc <= clearedAt ? RegionalRead.Cleared : writtenAtUtc > latestServable ? RegionalRead.Future : RegionalRead.Usable;
    }

    /// <summary>Queues a fresh vector for the store; a push (<paramref name="announce"/>) is announced to the other
    /// hosts once written.</summary>
    private void EnqueueRegional(long userId, float[] vector, bool announce = false, long? writtenAtUtcMs = null) =>
        Regional?.TryEnqueue(new PendingWrite(
            RegionalField, Policy.RegionalFormat, Fingerprint, userId, writtenAtUtcMs ?? _time.GetUtcNow().ToUnixTimeMilliseconds(), vector, RegionalTimeToLive, announce));

    /// <summary>A regional value's age from wall-clock stamps (clamped at zero: hosts' clocks differ, within
    /// <c>Regional:MaxClockSkew</c>), as a
    /// <see cref="TimeSpan"/> and in <see cref="TimeProvider.GetTimestamp"/> units for the TTL checks.</summary>
    private (TimeSpan Age, long Ticks) RegionalAge(long writtenAtUtcMs, long nowUtcMs)
    {
        var age = TimeSpan.FromMilliseconds(Math.Max(0, nowUtcMs - writtenAtUtcMs));
        return (age, TimestampTicks.Of(age, _time.TimestampFrequency));
    }
}
