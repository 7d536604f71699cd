using ERCache.Diagnostics;
using ERCache.Storage;
using Microsoft.Extensions.Caching.Memory;

namespace ERCache.Tiers;

/// <summary>
/// A tier backed by <see cref="MemoryCache"/> with <c>SizeLimit = Capacity</c> (each entry has size 1): one
/// heap object per entry, MemoryCache's own compaction order. For teams that want its semantics, and the
/// benchmark peer of the slab tiers.
/// </summary>
/// <remarks>
/// MemoryCache drops a write that would exceed its size limit and compacts in the background. So that no
/// fresh vector is silently lost, writes here are serialised and compact synchronously first when the cache
/// is full. TTLs are checked against the cache's own <see cref="TimeProvider"/> timestamps, not MemoryCache
/// expirations (MemoryCache has its own clock), so MemoryCache cannot tell an expired entry from a live one:
/// this strategy does not reclaim expired entries first, and <c>MaxBytes</c> is not supported with it.
/// </remarks>
[System.Diagnostics.CodeAnalysis.SuppressMessage(
    "Design",
    "CA1001",
    Justification = "A tier dropped by a reload may still serve requests in flight; MemoryCache holds no unmanaged resource, so the GC reclaims it.")]
internal sealed class MemoryCacheTier<TCodec> : EmbeddingTier
    where TCodec : struct, IRowCodec
{
    private readonly MemoryCache _cache;
    private readonly Lock _writeLock = new();
    private readonly string _version;
    private readonly double _compactPercentage;
    private long _evictions;
    private bool _disposed; // written under _writeLock

    public MemoryCacheTier(string model, string version, TierPolicy policy, int dimensions, ERCacheMetrics metrics)
        : base(model, policy, dimensions, metrics)
    {
        _version = version;
        _cache = new MemoryCache(new MemoryCacheOptions { SizeLimit = policy.Capacity });

        // MemoryCache's default 5%, but at least one entry (it truncates Count * percentage).
        _compactPercentage = Math.Min(1.0, Math.Max(0.05, 1.5 / policy.Capacity));
    }

    public override int Capacity => Policy.Capacity;

    public override int Count => _cache.Count;

    /// <summary>Not known: MemoryCache's own entry objects are not visible from outside.</summary>
    public override double BytesPerEntry => double.NaN;

    /// <summary>The vector objects only (row array and its holder); MemoryCache's entries come on top.</summary>
    public override long AllocatedBytes => Count * (long)(StoredRowBytes + ((TCodec.RowBytes(Dimensions) + 24 + 7) & ~7));

    public override long ExpiredReclaimed => 0;

    public override long Evictions => Interlocked.Read(ref _evictions);

    /// <summary>Whether <see cref="Dispose"/> released the inner cache.</summary>
    public bool IsReleased => Volatile.Read(ref _disposed);

    public override bool TryRead(long userId, long now, long ttl, Span<float> destination, out long writtenAt)
    {
        writtenAt = 0;
        if (!IsReleased && TryGet(new EntryKey(Model, _version, userId), out var value) &&
            value is StoredRow row && SlotPage.IsFresh(now, row.WrittenAt, ttl))
        {
            TCodec.Decode(row.Bytes, destination); // entries are immutable: no torn reads
            writtenAt = row.WrittenAt;
            return true;
        }

        return false;
    }

    public override void ForEachEntry(TierEntryVisitor visitor, bool withRows)
    {
        if (IsReleased)
        {
            return;
        }

        foreach (var key in _cache.Keys)
        {
            if (key is EntryKey entry && TryGet(entry, out var value) && value is StoredRow row)
            {
                visitor(entry.UserId, row.WrittenAt, withRows ? row.Bytes : []);
            }
        }
    }

    public override bool TryGetWrittenAt(long userId, long now, long ttl, out long writtenAt)
    {
        writtenAt = 0;
        if (!IsReleased && TryGet(new EntryKey(Model, _version, userId), out var value) && value is StoredRow row && SlotPage.IsFresh(now, row.WrittenAt, ttl))
        {
            writtenAt = row.WrittenAt;
            return true;
        }

        return false;
    }

    /// <summary>A read that a release racing with it turns into a miss (the tier of a retired model version, or one a
    /// reload rebuilt, may still be read by a request that began before).</summary>
    private bool TryGet(EntryKey key, out object? value)
    {
        try
        {
            return _cache.TryGetValue(key, out value);
        }
        catch (ObjectDisposedException)
        {
            value = null;
            return false;
        }
    }

    public override void Write(long userId, ReadOnlySpan<float> vector, long writtenAt, long ttl = long.MaxValue)
    {
        var bytes = new byte[TCodec.RowBytes(Dimensions)];
        TCodec.Encode(vector, bytes);
        var key = new EntryKey(Model, _version, userId);
        lock (_writeLock)
        {
            if (_disposed)
            {
                return; // released: nothing reads it any more
            }

            if (_cache.Count >= Capacity && !_cache.TryGetValue(key, out _))
            {
                int before = _cache.Count;
                _cache.Compact(_compactPercentage);
                long evicted = Math.Max(0, before - _cache.Count);
                Interlocked.Add(ref _evictions, evicted);
                RecordEvictions(evicted, expired: false);
            }

            using var entry = _cache.CreateEntry(key);
            entry.Size = 1;
            entry.Value = new StoredRow(bytes, writtenAt);
        }
    }

    public override bool TryWriteNewer(long userId, ReadOnlySpan<float> vector, long writtenAt, long ttl, Func<long, bool>? removed = null)
    {
        lock (_writeLock)
        {
            if (removed?.Invoke(userId) == true || (TryGet(new EntryKey(Model, _version, userId), out var value) && value is StoredRow row && row.WrittenAt >= writtenAt))
            {
                return false;
            }

            Write(userId, vector, writtenAt, ttl); // the lock is re-entrant
            return true;
        }
    }

    public override bool Remove(long userId)
    {
        var key = new EntryKey(Model, _version, userId);
        lock (_writeLock)
        {
            if (_disposed)
            {
                return false;
            }

            bool held = _cache.TryGetValue(key, out _);
            _cache.Remove(key);
            return held;
        }
    }

    public override int Clear()
    {
        lock (_writeLock)
        {
            if (_disposed)
            {
                return 0;
            }

            int count = _cache.Count;
            _cache.Clear();
            return count;
        }
    }

    /// <summary>The full key (model, version, user), compared field by field.</summary>
    private readonly record struct EntryKey(string Model, string Version, long UserId);

    private sealed record StoredRow(byte[] Bytes, long WrittenAt);

    private const int StoredRowBytes = 32; // object header and method table, one reference, one long

    /// <summary>Releases the inner cache; later writes do nothing and reads miss.</summary>
    public override void Dispose()
    {
        lock (_writeLock)
        {
            Volatile.Write(ref _disposed, true);
            _cache.Dispose();
        }

        base.Dispose();
    }
}
