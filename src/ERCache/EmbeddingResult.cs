using System.Runtime.InteropServices;

namespace ERCache;

/// <summary>
/// The outcome of one user's embedding request: where the vector came from, how old it is and which
/// model version produced it. The vector itself is written into the caller's destination buffer.
/// </summary>
[StructLayout(LayoutKind.Auto)]
public readonly struct EmbeddingResult : IEquatable<EmbeddingResult>
{
    // Unchecked: the request path builds one per hit.
    internal EmbeddingResult(EmbeddingSource source, TimeSpan age, string modelVersion, InferenceFailureCause cause, bool hasVector)
    {
        Source = source;
        Age = age;
        ModelVersion = modelVersion;
        FailureCause = cause;
        HasVector = hasVector;
    }

    /// <summary>Builds a result, checked; the cache builds its own, and this serves a fake <see cref="IEmbeddingCache"/> or a test
    /// (<c>ERCache.Testing</c>'s <c>EmbeddingResults</c> names the usual ones).</summary>
    /// <param name="source">Where the vector came from.</param>
    /// <param name="age">How old the vector is; not negative.</param>
    /// <param name="modelVersion">The model version it was served under.</param>
    /// <param name="cause">Why inference did not answer (<see cref="InferenceFailureCause.None"/> when it did or was not
    /// needed).</param>
    /// <param name="hasVector">Whether the destination holds a vector (false for a fallback without a default vector).</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="age"/> is negative, or <paramref name="source"/> or
    /// <paramref name="cause"/> is not a defined value.</exception>
    /// <exception cref="ArgumentNullException"><paramref name="modelVersion"/> is null.</exception>
    public static EmbeddingResult Create(EmbeddingSource source, TimeSpan age, string modelVersion, InferenceFailureCause cause, bool hasVector)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(age, TimeSpan.Zero);
        ArgumentNullException.ThrowIfNull(modelVersion);
        if (!Enum.IsDefined(source))
        {
            throw new ArgumentOutOfRangeException(nameof(source), source, "Not a defined EmbeddingSource.");
        }

        if (!Enum.IsDefined(cause))
        {
            throw new ArgumentOutOfRangeException(nameof(cause), cause, "Not a defined InferenceFailureCause.");
        }

        return new EmbeddingResult(source, age, modelVersion, cause, hasVector);
    }

    /// <summary>Where the vector came from.</summary>
    public EmbeddingSource Source { get; }

    /// <summary>How long ago the served vector was computed: zero for <see cref="EmbeddingSource.Fresh"/>,
    /// the time since it was written for <see cref="EmbeddingSource.Direct"/> and
    /// <see cref="EmbeddingSource.Failover"/>, and zero for <see cref="EmbeddingSource.Fallback"/>.</summary>
    public TimeSpan Age { get; }

    /// <summary>The model version (<c>Version</c> in configuration) the request was served under.</summary>
    public string ModelVersion { get; }

    /// <summary>Why inference did not produce a vector; <see cref="InferenceFailureCause.None"/> for
    /// <see cref="EmbeddingSource.Direct"/> and <see cref="EmbeddingSource.Fresh"/>.</summary>
    public InferenceFailureCause FailureCause { get; }

    /// <summary><see langword="true"/> when the destination holds a user embedding or the model's configured
    /// default vector; <see langword="false"/> for a fallback without a default vector (the destination is zeroed).</summary>
    public bool HasVector { get; }

    /// <inheritdoc />
    public bool Equals(EmbeddingResult other) =>
        Source == other.Source && Age == other.Age && FailureCause == other.FailureCause &&
        HasVector == other.HasVector && string.Equals(ModelVersion, other.ModelVersion, StringComparison.Ordinal);

    /// <inheritdoc />
    public override bool Equals(object? obj) => obj is EmbeddingResult other && Equals(other);

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(Source, Age, ModelVersion, FailureCause, HasVector);

    /// <summary>Compares two results field by field.</summary>
    public static bool operator ==(EmbeddingResult left, EmbeddingResult right) => left.Equals(right);

    /// <summary>Compares two results field by field.</summary>
    public static bool operator !=(EmbeddingResult left, EmbeddingResult right) => !left.Equals(right);

    /// <inheritdoc />
    public override string ToString() =>
        FailureCause == InferenceFailureCause.None
            ? $"{Source} (age {Age}, version {ModelVersion})"
            : $"{Source} (age {Age}, version {ModelVersion}, cause {FailureCause})";
}
