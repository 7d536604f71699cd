namespace ERCache;

/// <summary>
/// Serves user embeddings per model: from the direct tier, from inference, from the failover tier, or a
/// fallback (see <see cref="EmbeddingSource"/>). Safe to call from many threads at once.
/// </summary>
public interface IEmbeddingCache
{
    /// <summary>The configured model names.</summary>
    IReadOnlyCollection<string> Models { get; }

    /// <summary>The validated settings currently in force for <paramref name="model"/>: its dimensions, version,
    /// inference limits and tiers.</summary>
    /// <param name="model">A configured model name (case-insensitive).</param>
    /// <exception cref="ArgumentException">Unknown model.</exception>
    ModelPolicy GetPolicy(string model);

    /// <summary>What one tier of <paramref name="model"/> holds and costs now, or <see langword="null"/> when the tier
    /// is disabled.</summary>
    /// <param name="model">A configured model name (case-insensitive).</param>
    /// <param name="tier">The tier.</param>
    /// <exception cref="ArgumentException">Unknown model.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="tier"/> is not a defined <see cref="TierKind"/>.</exception>
    TierStatistics? GetTierStatistics(string model, TierKind tier);

    /// <summary>
    /// Writes user <paramref name="userId"/>'s embedding for <paramref name="model"/> into
    /// <paramref name="destination"/> and says where it came from. Inference failures never throw: they are
    /// answered from the failover tier or as a fallback.
    /// </summary>
    /// <param name="model">A configured model name.</param>
    /// <param name="userId">The user.</param>
    /// <param name="destination">Exactly the model's <c>Dimensions</c> floats, owned by the caller.</param>
    /// <param name="cancellationToken">Ends the wait for inference; the call then throws <see cref="OperationCanceledException"/>.</param>
    /// <exception cref="ArgumentException">Unknown model, or a destination of the wrong length.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    ValueTask<EmbeddingResult> GetAsync(string model, long userId, Memory<float> destination, CancellationToken cancellationToken = default);

    /// <summary>
    /// Serves many users of one model: hits are copied at once and all misses go to inference together, in
    /// as few delegate calls as <c>Inference:MaxBatchSize</c> allows. Row <c>i</c> of
    /// <paramref name="destination"/> and element <c>i</c> of <paramref name="results"/> belong to
    /// <c>userIds[i]</c>.
    /// </summary>
    /// <param name="model">A configured model name.</param>
    /// <param name="userIds">The users.</param>
    /// <param name="destination">Exactly <c>userIds.Length × Dimensions</c> floats.</param>
    /// <param name="results">Exactly <c>userIds.Length</c> results.</param>
    /// <param name="cancellationToken">Ends the wait for inference; the call then throws <see cref="OperationCanceledException"/>.</param>
    /// <exception cref="ArgumentException">Unknown model, or a buffer of the wrong length.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    ValueTask GetManyAsync(string model, ReadOnlyMemory<long> userIds, Memory<float> destination, Memory<EmbeddingResult> results, CancellationToken cancellationToken = default);

    /// <summary>
    /// <see cref="GetAsync(string, long, Memory{float}, CancellationToken)"/> with per-call options: a maximum age
    /// stricter than the TTL, a forced refresh, or no failover tier.
    /// </summary>
    /// <param name="model">A configured model name.</param>
    /// <param name="userId">The user.</param>
    /// <param name="destination">Exactly the model's <c>Dimensions</c> floats, owned by the caller.</param>
    /// <param name="options">This call's options.</param>
    /// <param name="cancellationToken">Ends the wait for inference; the call then throws <see cref="OperationCanceledException"/>.</param>
    /// <exception cref="ArgumentException">Unknown model, or a destination of the wrong length.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><see cref="EmbeddingRequestOptions.MaxAge"/> is negative.</exception>
    ValueTask<EmbeddingResult> GetAsync(string model, long userId, Memory<float> destination, EmbeddingRequestOptions options, CancellationToken cancellationToken = default);

    /// <summary>
    /// <see cref="GetManyAsync(string, ReadOnlyMemory{long}, Memory{float}, Memory{EmbeddingResult}, CancellationToken)"/>
    /// with per-call options, applied to every user of the call.
    /// </summary>
    /// <param name="model">A configured model name.</param>
    /// <param name="userIds">The users.</param>
    /// <param name="destination">Exactly <c>userIds.Length × Dimensions</c> floats.</param>
    /// <param name="results">Exactly <c>userIds.Length</c> results.</param>
    /// <param name="options">This call's options.</param>
    /// <param name="cancellationToken">Ends the wait for inference; the call then throws <see cref="OperationCanceledException"/>.</param>
    /// <exception cref="ArgumentException">Unknown model, or a buffer of the wrong length.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><see cref="EmbeddingRequestOptions.MaxAge"/> is negative.</exception>
    ValueTask GetManyAsync(string model, ReadOnlyMemory<long> userIds, Memory<float> destination, Memory<EmbeddingResult> results, EmbeddingRequestOptions options, CancellationToken cancellationToken = default);

    /// <summary>
    /// Pushes a user's vector (for example from a feature pipeline): validated like inference output, written to both
    /// local tiers stamped now, and queued for the regional store with the next grouped write. An inference of the
    /// user already running is not written over it.
    /// </summary>
    /// <param name="model">A configured model name.</param>
    /// <param name="userId">The user.</param>
    /// <param name="vector">Exactly the model's <c>Dimensions</c> floats, every one finite; copied.</param>
    /// <exception cref="ArgumentException">Unknown model, a vector of the wrong length, or a non-finite value.</exception>
    void SetVector(string model, long userId, ReadOnlySpan<float> vector);

    /// <summary>
    /// Removes a user's entries of one model: the regional store's value, then both local tiers. An inference or
    /// regional lookup of the user already running does not put it back. The store call is bounded by
    /// <c>Regional:WriteTimeout</c> whatever is queued: it does not wait for the write queue, since the store refuses a
    /// queued value stamped at or before the removal (newer wins), so none lands after the deletion. With an
    /// invalidation channel, the other hosts drop their local copies when they hear of it (one more round trip, bounded
    /// alike); without one they keep them until their TTL.
    /// </summary>
    /// <param name="model">A configured model name.</param>
    /// <param name="userId">The user.</param>
    /// <param name="cancellationToken">Stops waiting for the regional store.</param>
    /// <returns>How many local entries (direct and failover) there were.</returns>
    /// <exception cref="ArgumentException">Unknown model.</exception>
    /// <exception cref="TimeoutException">The regional store did not answer within <c>Regional:WriteTimeout</c>; the
    /// local tiers are cleared anyway. Other store failures are thrown as the store threw them.</exception>
    Task<int> RemoveAsync(string model, long userId, CancellationToken cancellationToken = default);

    /// <summary>Removes a user's entries of every model, as <see cref="RemoveAsync(string, long, CancellationToken)"/>
    /// does for one (regionally, the user's whole hash).</summary>
    /// <param name="userId">The user.</param>
    /// <param name="cancellationToken">Stops waiting for the regional store.</param>
    /// <returns>How many local entries there were, over all models and tiers.</returns>
    /// <exception cref="TimeoutException">The regional store did not answer in time; the local tiers are cleared anyway.</exception>
    Task<int> RemoveAsync(long userId, CancellationToken cancellationToken = default);

    /// <summary>
    /// Empties both local tiers of one model. Inference already running does not write afterwards, and this host
    /// ignores the model's regional values written until now (a region-wide clear is a <c>Version</c> change: the
    /// regional store keys values by user, so it cannot drop one model's values in one step).
    /// </summary>
    /// <param name="model">A configured model name.</param>
    /// <returns>How many local entries there were.</returns>
    /// <exception cref="ArgumentException">Unknown model.</exception>
    int Clear(string model);

    /// <summary>
    /// A handle on one model whose calls skip the look-up by name (for a service that asks the same model on every
    /// request). It follows reloads: after one, its next call finds the model again.
    /// </summary>
    /// <param name="model">A configured model (case-insensitive).</param>
    /// <exception cref="ArgumentException">Unknown model.</exception>
    EmbeddingModel GetModel(string model);

    /// <summary>Writes the fresh vectors queued for the regional store now, instead of at the next flush interval (for
    /// a graceful shutdown, or a test). Completes at once when no regional store is registered. Write failures are
    /// counted, never thrown.</summary>
    /// <param name="cancellationToken">Stops waiting.</param>
    Task FlushRegionalWritesAsync(CancellationToken cancellationToken = default);

    /// <summary>
    /// Prepares the cache for its first requests: runs the cache's own request path for every configured storage
    /// shape (already done when the cache was built, unless a reload added a shape), and opens the regional store's
    /// connection with one lookup when a store is registered. The models' inference is not called (no user id is a
    /// harmless one to invent): warm a tower's own code yourself before the service reports ready, for example by
    /// running it once on a canary input.
    /// </summary>
    /// <remarks>In a host, <c>AddERCache()</c> runs this when the host starts, before a server listens.</remarks>
    /// <param name="cancellationToken">Stops waiting; the regional lookup is bounded by <c>Regional:Timeout</c>.</param>
    Task WarmUpAsync(CancellationToken cancellationToken = default);
}
