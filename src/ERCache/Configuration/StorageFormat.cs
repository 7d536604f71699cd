namespace ERCache;

/// <summary>How a tier stores each vector.</summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Naming", "CA1720", Justification = "The names are the configuration values users write.")]
public enum StorageFormat
{
    /// <summary>32-bit IEEE floats, exact (4 bytes a value).</summary>
    Float32,

    /// <summary>16-bit IEEE halves (2 bytes a value): about 3 significant digits; saturates at ±65504.</summary>
    Float16,

    /// <summary>Row-wise 8-bit quantization (1 byte a value plus an 8-byte scale and bias per row): each value
    /// within half a step, (max - min) / 255 / 2, of the original.</summary>
    Int8,
}
