namespace ERCache;

/// <summary>How one model uses the regional tier (<c>ERCache:Models:&lt;name&gt;:Regional</c>).</summary>
public sealed class ModelRegionalOptions
{
    /// <summary>Whether the model reads and writes the regional store when one is registered. Default
    /// <see langword="true"/>.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>The format vectors travel and rest in (<c>Int8</c> or <c>Float16</c> cut the bytes on the wire).
    /// Default: the failover tier's format.</summary>
    public StorageFormat? Format { get; set; }
}
