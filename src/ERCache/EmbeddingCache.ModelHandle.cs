using ERCache.Models;

namespace ERCache;

public sealed partial class EmbeddingCache
{
    /// <summary>The cache's <see cref="EmbeddingModel"/>: the model's version state, found again only when the set of
    /// versions changed, and that state's current settings read on every call.</summary>
    private sealed class ModelHandle(EmbeddingCache cache, string name) : EmbeddingModel(name)
    {
        private Resolved? _resolved;

        public override ModelPolicy Policy => Runtime().Policy;

        public override ValueTask<EmbeddingResult> GetAsync(long userId, Memory<float> destination, CancellationToken cancellationToken = default) =>
            cache.GetAsync(Runtime(), userId, destination, cancellationToken);

        public override ValueTask GetManyAsync(
            ReadOnlyMemory<long> userIds, Memory<float> destination, Memory<EmbeddingResult> results, CancellationToken cancellationToken = default) =>
            cache.GetManyAsync(Runtime(), userIds, destination, results, cancellationToken);

        public override ValueTask<EmbeddingResult> GetAsync(
            long userId, Memory<float> destination, EmbeddingRequestOptions options, CancellationToken cancellationToken = default) =>
            cache.GetAsync(Runtime(), userId, destination, options, cancellationToken);

        public override ValueTask GetManyAsync(
            ReadOnlyMemory<long> userIds, Memory<float> destination, Memory<EmbeddingResult> results, EmbeddingRequestOptions options,
            CancellationToken cancellationToken = default) =>
            cache.GetManyAsync(Runtime(), userIds, destination, results, options, cancellationToken);

        private ModelRuntime Runtime()
        {
            // While no version changed: one object read and one reference compare, then the state's current settings (a
            // reload that keeps the version swaps those in place).
            var models = cache.ModelsSnapshot();
            var resolved = Volatile.Read(ref _resolved);
            if (resolved is not null && ReferenceEquals(resolved.Models, models))
            {
                return resolved.State.Current;
            }

            var state = cache.ResolveState(Name);
            Volatile.Write(ref _resolved, new Resolved(models, state));
            return state.Current;
        }

        private sealed record Resolved(object Models, ModelVersionState State);
    }
}
