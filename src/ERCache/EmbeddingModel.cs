namespace ERCache;

/// <summary>
/// One model of an <see cref="EmbeddingCache"/>, resolved once (<see cref="IEmbeddingCache.GetModel"/>): the same
/// calls as the cache's, without the look-up by name. It follows every configuration reload: settings that keep the
/// model's version apply to its next call, and after a new version or the model's removal it finds the model again
/// (and throws if the reload removed it).
/// </summary>
/// <remarks>Safe to share between threads, like the cache.</remarks>
public sealed class EmbeddingModel
{
    private readonly EmbeddingCache _cache;
    private Resolved? _resolved;

    internal EmbeddingModel(EmbeddingCache cache, string name)
    {
        _cache = cache;
        Name = name;
    }

    /// <summary>The model's name as configured.</summary>
    public string Name { get; }

    /// <summary>The model's settings now (they change with a reload).</summary>
    public ModelPolicy Policy => Runtime().Policy;

    /// <inheritdoc cref="IEmbeddingCache.GetAsync(string, long, Memory{float}, CancellationToken)"/>
    public ValueTask<EmbeddingResult> GetAsync(long userId, Memory<float> destination, CancellationToken cancellationToken = default) =>
        _cache.GetAsync(Runtime(), userId, destination, cancellationToken);

    /// <inheritdoc cref="IEmbeddingCache.GetManyAsync(string, ReadOnlyMemory{long}, Memory{float}, Memory{EmbeddingResult}, CancellationToken)"/>
    public ValueTask GetManyAsync(ReadOnlyMemory<long> userIds, Memory<float> destination, Memory<EmbeddingResult> results, CancellationToken cancellationToken = default) =>
        _cache.GetManyAsync(Runtime(), userIds, destination, results, cancellationToken);

    /// <inheritdoc cref="IEmbeddingCache.GetAsync(string, long, Memory{float}, EmbeddingRequestOptions, CancellationToken)"/>
    public ValueTask<EmbeddingResult> GetAsync(long userId, Memory<float> destination, EmbeddingRequestOptions options, CancellationToken cancellationToken = default) =>
        _cache.GetAsync(Runtime(), userId, destination, options, cancellationToken);

    /// <inheritdoc cref="IEmbeddingCache.GetManyAsync(string, ReadOnlyMemory{long}, Memory{float}, Memory{EmbeddingResult}, EmbeddingRequestOptions, CancellationToken)"/>
    public ValueTask GetManyAsync(
        ReadOnlyMemory<long> userIds, Memory<float> destination, Memory<EmbeddingResult> results, EmbeddingRequestOptions options, CancellationToken cancellationToken = default) =>
        _cache.GetManyAsync(Runtime(), userIds, destination, results, options, cancellationToken);

    private Models.ModelRuntime Runtime()
    {
        // While no version changed: one object read and one reference compare, then the state's current settings (a
        // reload that keeps the version swaps those in place).
        var models = _cache.ModelsSnapshot();
        var resolved = Volatile.Read(ref _resolved);
        if (resolved is not null && ReferenceEquals(resolved.Models, models))
        {
            return resolved.State.Current;
        }

        var state = _cache.ResolveState(Name);
        Volatile.Write(ref _resolved, new Resolved(models, state));
        return state.Current;
    }

    private sealed record Resolved(object Models, Models.ModelVersionState State);
}
