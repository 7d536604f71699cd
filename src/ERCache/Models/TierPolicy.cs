namespace ERCache;

/// <summary>The validated settings of one tier.</summary>
public sealed class TierPolicy
{
    private TierPolicy(TierKind kind, TierOptions options)
    {
        Kind = kind;
        Enabled = options.Enabled;
        Ttl = options.Ttl;
        Capacity = options.Capacity;
        MaxBytes = options.MaxBytes;
        Eviction = options.Eviction;
        Format = options.Format;
        HugePages = options.HugePages;
    }

    /// <summary>Which tier this is.</summary>
    public TierKind Kind { get; }

    /// <summary>Whether the tier exists.</summary>
    public bool Enabled { get; }

    /// <summary>Entries younger than this are valid.</summary>
    public TimeSpan Ttl { get; }

    /// <summary>Most entries held.</summary>
    public int Capacity { get; }

    /// <summary>The bound on the bytes a full tier holds, if any.</summary>
    public long? MaxBytes { get; }

    /// <summary>The eviction strategy.</summary>
    public EvictionStrategy Eviction { get; }

    /// <summary>The storage format.</summary>
    public StorageFormat Format { get; }

    /// <summary>Whether a large tier asks for transparent huge pages (Linux).</summary>
    public bool HugePages { get; }

    internal static TierPolicy From(TierKind kind, TierOptions options) => new(kind, options);

    /// <summary>Whether a tier built for <paramref name="other"/> can be kept as is (only the TTL differs).</summary>
    internal bool SameStorageAs(TierPolicy other) =>
        Enabled == other.Enabled && Capacity == other.Capacity && MaxBytes == other.MaxBytes &&
        Eviction == other.Eviction && Format == other.Format && HugePages == other.HugePages;
}
