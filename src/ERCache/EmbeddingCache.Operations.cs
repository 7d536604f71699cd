using ERCache.Regional;
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
            throw new ArgumentException(
                $"The vector for model '{runtime.Policy.Name}' has {vector.Length} values but the model's Dimensions is {runtime.Policy.Dimensions}.", nameof(vector));
        }

        int bad = Storage.RowKernels.IndexOfNonFinite(vector);
        if (bad >= 0)
        {
            throw new ArgumentException(
                $"The vector for model '{runtime.Policy.Name}' has a non-finite value at index {bad} ({vector[bad].ToString(System.Globalization.CultureInfo.InvariantCulture)}); every value must be finite.",
                nameof(vector));
        }

        bool logged = _snapshots?.NoteRemoved(runtime.State.Name, userId, durable: false) ?? true; // a snapshot's older vector never comes back over the push
        runtime.Set(userId, vector);
        if (!logged)
        {
            _snapshots!.SettleUnlogged(runtime.State.Name);
        }

        if (runtime.State.Next?.Current is { } next)
        {
            // A rollout's next version computed its vector before the push: drop the local copy (it is warmed again).
            next.DropLocal(userId);
        }
    }

    /// <inheritdoc />
    public Task<int> RemoveAsync(string model, long userId, CancellationToken cancellationToken = default)
    {
        CheckDisposed();
        var runtime = Resolve(model);
        ModelRuntime[] runtimes = runtime.State.Next?.Current is { } next ? [runtime, next] : [runtime];
        bool logged = _snapshots?.NoteRemoved(runtime.State.Name, userId, durable: true) ?? true; // before the tiers, and lasting: a crash does not undo it
        var removal = RemoveAsync(runtimes, userId, [.. runtimes.Select(r => r.RegionalField)], cancellationToken);
        return logged ? removal : SettleUnloggedAsync(removal, [runtime.State.Name]);
    }

    /// <inheritdoc />
    public Task<int> RemoveAsync(long userId, CancellationToken cancellationToken = default)
    {
        CheckDisposed();
        List<string>? unlogged = null;
        foreach (var state in _registry.States)
        {
            if (_snapshots?.NoteRemoved(state.Name, userId, durable: true) == false)
            {
                (unlogged ??= []).Add(state.Name);
            }
        }

        var removal = RemoveAsync([.. _registry.AllVersions.Select(s => s.Current)], userId, fields: null, cancellationToken);
        return unlogged is null ? removal : SettleUnloggedAsync(removal, unlogged);
    }

    /// <inheritdoc />
    public int Clear(string model)
    {
        CheckDisposed();
        var runtime = Resolve(model);
        bool logged = _snapshots?.NoteRemoved(runtime.State.Name, Tiers.Snapshots.RemovalLog.EveryUser, durable: true) ?? true;
        int cleared = runtime.Clear();
        runtime.State.Next?.Current.Clear(); // a rollout's next version: its count is not the model's entries
        if (!logged)
        {
            _snapshots!.SettleUnlogged(runtime.State.Name);
        }

        _invalidator?.Announce(InvalidationKind.Clear, 0, runtime.RegionalField);
        if (runtime.State.Next?.Current is { } next)
        {
            _invalidator?.Announce(InvalidationKind.Clear, 0, next.RegionalField);
        }

        return cleared;
    }

    /// <summary>Once a removal whose record could not be written has changed the tiers (or failed), deletes the models'
    /// snapshots again (see <see cref="SnapshotKeeper.SettleUnlogged"/>).</summary>
    private async Task<int> SettleUnloggedAsync(Task<int> removal, IReadOnlyList<string> models)
    {
        try
        {
            return await removal.ConfigureAwait(false);
        }
        finally
        {
            foreach (string model in models)
            {
                _snapshots!.SettleUnlogged(model);
            }
        }
    }

    private async Task<int> RemoveAsync(ModelRuntime[] runtimes, long userId, string[]? fields, CancellationToken cancellationToken)
    {
        // A removal is a request in flight: a disposal waits for it instead of releasing the tiers under it.
        if (!_requests.TryAcquire())
        {
            ThrowHelper.ThrowDisposed();
        }

        try
        {
            return await RemoveLeasedAsync(runtimes, userId, fields, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            ExitRequest();
        }
    }

    private async Task<int> RemoveLeasedAsync(ModelRuntime[] runtimes, long userId, string[]? fields, CancellationToken cancellationToken)
    {
        // Order matters: stop running inference from writing, delete regionally, then locally, so that no lookup or
        // inference that began before the removal can put the user back afterwards.
        foreach (var runtime in runtimes)
        {
            runtime.BeginRemove(userId);
        }

        int removed;
        try
        {
            // An all-models removal deletes the user's whole hash in one call; a single-model one deletes the model's
            // field (and its next version's, during a rollout). A model that does not use the regional tier has nothing there.
            // The store remembers the removal as long as a value written before it could still be served.
            var remember = runtimes.Length == 0 ? TimeSpan.Zero : runtimes.Max(r => r.RegionalTimeToLive);
            if (_regional is not null && fields is null)
            {
                await _regional.RemoveAsync(userId, field: null, remember, cancellationToken).ConfigureAwait(false);
            }
            else if (_regional is not null && runtimes[0].Regional is not null)
            {
                // Together, so that a rollout's two fields take one WriteTimeout, not two.
                await Task.WhenAll(fields!.Select(f => _regional.RemoveAsync(userId, f, remember, cancellationToken))).ConfigureAwait(false);
            }
        }
        finally
        {
            removed = FinishRemove(runtimes, userId); // a call, not a loop in the handler (docs/internals.md, "Code the runtime tiers")
        }

        // The store holds nothing for the user now; the other hosts drop their local copies when they hear this.
        if (_regional is not null && (fields is null || runtimes[0].Regional is not null))
        {
            await AnnounceRemovalAsync(userId, fields, cancellationToken).ConfigureAwait(false);
        }

        return removed;
    }

    private static int FinishRemove(ModelRuntime[] runtimes, long userId)
    {
        int removed = 0;
        foreach (var runtime in runtimes)
        {
            removed += runtime.FinishRemove(userId);
        }

        return removed;
    }
}
