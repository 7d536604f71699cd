using ERCache.Internal;
using ERCache.Models;

namespace ERCache;

// The operations on cached vectors (DESIGN §2 and the IEmbeddingCache contract): push, remove, clear; argument
// checks here, the ordering against writes in flight in the model's version state.
public sealed partial class EmbeddingCache
{
    /// <inheritdoc />
    public void SetVector(string model, long userId, ReadOnlySpan<float> vector)
    {
        CheckDisposed();
        var runtime = Resolve(model);
        if (vector.Length != runtime.Policy.Dimensions)
        {
            ThrowHelper.ThrowDestinationLength(nameof(vector), runtime.Policy, vector.Length, 1);
        }

        int bad = Storage.RowKernels.IndexOfNonFinite(vector);
        if (bad >= 0)
        {
            throw new ArgumentException(
                $"The vector for model '{runtime.Policy.Name}' has a non-finite value at index {bad} ({vector[bad].ToString(System.Globalization.CultureInfo.InvariantCulture)}); every value must be finite.",
                nameof(vector));
        }

        runtime.Set(userId, vector);
    }

    /// <inheritdoc />
    public Task<int> RemoveAsync(string model, long userId, CancellationToken cancellationToken = default)
    {
        CheckDisposed();
        var runtime = Resolve(model);
        return RemoveAsync([runtime], userId, runtime.RegionalField, cancellationToken);
    }

    /// <inheritdoc />
    public Task<int> RemoveAsync(long userId, CancellationToken cancellationToken = default)
    {
        CheckDisposed();
        return RemoveAsync([.. _registry.States.Select(s => s.Current)], userId, field: null, cancellationToken);
    }

    /// <inheritdoc />
    public int Clear(string model)
    {
        CheckDisposed();
        return Resolve(model).Clear();
    }

    private async Task<int> RemoveAsync(ModelRuntime[] runtimes, long userId, string? field, CancellationToken cancellationToken)
    {
        // Order matters: stop running inference from writing, delete regionally, then locally, so that no lookup or
        // inference that began before the removal can put the user back afterwards.
        foreach (var runtime in runtimes)
        {
            runtime.BeginRemove(userId);
        }

        int removed = 0;
        try
        {
            // One call covers every model: a single-model removal deletes the model's field, an all-models one the
            // user's whole hash. A model that does not use the regional tier has nothing there.
            if (_regional is not null && (field is null || runtimes[0].Regional is not null))
            {
                await _regional.RemoveAsync(userId, field, cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            foreach (var runtime in runtimes)
            {
                removed += runtime.FinishRemove(userId);
            }
        }

        return removed;
    }
}
