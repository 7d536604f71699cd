namespace ERCache;

/// <summary>
/// One model of an embedding cache, resolved once (<see cref="IEmbeddingCache.GetModel"/>): the same calls as the
/// cache's, without the look-up by name. The cache's handle follows every configuration reload: settings that keep the
/// model's version apply to its next call, and after a new version or the model's removal it finds the model again
/// (and throws if the reload removed it).
/// </summary>
/// <remarks>Safe to share between threads, like the cache. Abstract so that a service's own tests can substitute one
/// (a subclass, or a mocking library); the cache's handles are its own sealed subclass.</remarks>
public abstract class EmbeddingModel
{
    /// <summary>Creates a model handle named <paramref name="name"/>.</summary>
    /// <param name="name">The model's name as configured.</param>
    /// <exception cref="ArgumentException"><paramref name="name"/> is null, empty or white space.</exception>
    protected EmbeddingModel(string name)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        Name = name;
    }

    /// <summary>The model's name as configured.</summary>
    public string Name { get; }

    /// <summary>The model's settings now (they change with a reload).</summary>
    public abstract ModelPolicy Policy { get; }

    /// <inheritdoc cref="IEmbeddingCache.GetAsync(string, long, Memory{float}, CancellationToken)"/>
    public abstract ValueTask<EmbeddingResult> GetAsync(long userId, Memory<float> destination, CancellationToken cancellationToken = default);

    /// <inheritdoc cref="IEmbeddingCache.GetManyAsync(string, ReadOnlyMemory{long}, Memory{float}, Memory{EmbeddingResult}, CancellationToken)"/>
    public abstract ValueTask GetManyAsync(
        ReadOnlyMemory<long> userIds, Memory<float> destination, Memory<EmbeddingResult> results, CancellationToken cancellationToken = default);

    /// <inheritdoc cref="IEmbeddingCache.GetAsync(string, long, Memory{float}, EmbeddingRequestOptions, CancellationToken)"/>
    public abstract ValueTask<EmbeddingResult> GetAsync(
        long userId, Memory<float> destination, EmbeddingRequestOptions options, CancellationToken cancellationToken = default);

    /// <inheritdoc cref="IEmbeddingCache.GetManyAsync(string, ReadOnlyMemory{long}, Memory{float}, Memory{EmbeddingResult}, EmbeddingRequestOptions, CancellationToken)"/>
    public abstract ValueTask GetManyAsync(
        ReadOnlyMemory<long> userIds, Memory<float> destination, Memory<EmbeddingResult> results, EmbeddingRequestOptions options,
        CancellationToken cancellationToken = default);
}
