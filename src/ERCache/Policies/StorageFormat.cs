namespace ERCache.Policies;

/// <summary>How a tier stores each vector.</summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Naming", "CA1720", Justification = "The names are the configuration values users write.")]
public enum StorageFormat
{
    /// <summary>32-bit IEEE floats, exact.</summary>
    Float32,
}
