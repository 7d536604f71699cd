namespace ERCache.Tiers;

/// <summary>
/// The seam for a tier shared by the hosts of a region (DESIGN §2 rules 2, 4, 5, 8 and 9), such as Redis or Garnet.
/// <see cref="Models.ModelRuntime"/> says where each call belongs in the request path. Nothing implements it yet.
/// </summary>
/// <remarks>
/// The shape follows from a remote store: every call is asynchronous and batched (one round trip for a request's
/// misses), bounded by the caller's deadline, and never on the critical path for writes; entries are stamped with
/// wall-clock time (<see cref="TimeProvider.GetUtcNow"/> as Unix milliseconds), because hosts share no monotonic clock;
/// the model's name and version are part of every key, so a new version never sees an older entry; and anything that
/// does not decode exactly (length, version, user, header) is a miss, so the store is an optimisation and never a
/// dependency.
/// </remarks>
internal interface IRemoteTier
{
    /// <summary>Looks <paramref name="users"/> of one model version up in one round trip. For each user found,
    /// writes its row into <paramref name="rows"/> (row <c>i</c> for <c>users[i]</c>) and its write stamp into
    /// <paramref name="writtenAtUnixMs"/>, and sets <c>found[i]</c>. Gives up, finding nothing more, when
    /// <paramref name="cancellationToken"/> fires at the caller's deadline.</summary>
    ValueTask LookupAsync(
        ModelPolicy model, ReadOnlyMemory<long> users, Memory<float> rows, Memory<long> writtenAtUnixMs, Memory<bool> found,
        CancellationToken cancellationToken);

    /// <summary>Queues a fresh, validated vector for an asynchronous write grouped with the user's other models;
    /// returns <see langword="false"/> when the bounded queue is full and the write was dropped. Never blocks.</summary>
    bool TryEnqueueWrite(ModelPolicy model, long userId, ReadOnlySpan<float> vector, long writtenAtUnixMs);
}
