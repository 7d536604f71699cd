using ERCache.Regional;

namespace ERCache.Replay.Replay;

/// <summary>
/// A shard's view of the shared regional store: reads and removals go straight through, waited for on the replay's
/// thread; writes are held until
/// <see cref="Commit"/>, which the replay calls before its clock moves, so what one host wrote becomes visible to the
/// others at a point fixed by the trace, not by when a background flush happened to run. Counts round trips and
/// bytes.
/// </summary>
internal sealed class ReplayRegionalStore(IRegionalStore inner) : IRegionalStore
{
    private readonly Lock _lock = new();
    private List<RegionalWriteGroup> _held = [];

    public RegionalTraffic Traffic { get; } = new();

    public Task<byte[]?[]> ReadAsync(string field, ReadOnlyMemory<long> users, int valueBytes, CancellationToken cancellationToken)
    {
        // Waited for here: a real store's reply arrives on its own thread, and the simulation must continue on its
        // one thread (the replay's clock does not move while it waits, so the store costs no virtual time).
        var values = inner.ReadAsync(field, users, valueBytes, cancellationToken).GetAwaiter().GetResult();
        Traffic.ReadRoundTrips++;
        Traffic.BytesRead += values.Sum(v => (long)(v?.Length ?? 0));
        return Task.FromResult(values);
    }

    /// <summary>Held until <see cref="Commit"/>; so nothing is late yet (the store's newer-wins rule applies then).</summary>
    public Task<RegionalWriteResult> WriteAsync(IReadOnlyList<RegionalWriteGroup> groups, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            _held.AddRange(groups);
        }

        return Task.FromResult(default(RegionalWriteResult));
    }

    /// <summary>A deletion event's removal, straight through.</summary>
    public Task RemoveAsync(long userId, string? field, long removedAtUnixMs, TimeSpan remember, CancellationToken cancellationToken)
    {
        inner.RemoveAsync(userId, field, removedAtUnixMs, remember, cancellationToken).GetAwaiter().GetResult(); // on the replay's thread, as a read
        return Task.CompletedTask;
    }

    /// <summary>Writes what the caches flushed since the last commit, in one round trip.</summary>
    public void Commit()
    {
        List<RegionalWriteGroup> groups;
        lock (_lock)
        {
            (groups, _held) = (_held, []);
        }

        if (groups.Count == 0)
        {
            return;
        }

        inner.WriteAsync(groups, CancellationToken.None).GetAwaiter().GetResult();
        Traffic.WriteRoundTrips++;
        Traffic.WriteGroups += groups.Count;
        Traffic.ValuesWritten += groups.Sum(g => g.Fields.Count);
        Traffic.BytesWritten += groups.Sum(g => g.Fields.Sum(f => (long)f.Value.Length));
    }
}

/// <summary>What a replay sent to and read from the regional store (summed over shards).</summary>
internal sealed class RegionalTraffic
{
    public long ReadRoundTrips { get; set; }

    public long BytesRead { get; set; }

    public long WriteRoundTrips { get; set; }

    public long WriteGroups { get; set; }

    public long ValuesWritten { get; set; }

    public long BytesWritten { get; set; }

    public void Add(RegionalTraffic other)
    {
        ReadRoundTrips += other.ReadRoundTrips;
        BytesRead += other.BytesRead;
        WriteRoundTrips += other.WriteRoundTrips;
        WriteGroups += other.WriteGroups;
        ValuesWritten += other.ValuesWritten;
        BytesWritten += other.BytesWritten;
    }
}
