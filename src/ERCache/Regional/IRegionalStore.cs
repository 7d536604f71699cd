namespace ERCache.Regional;

/// <summary>
/// A store shared by the hosts of a region (Redis, Garnet, ...), as the regional tier sees it: values are opaque bytes
/// under a user and a field (the model and its version), and every call is one round trip for many users.
/// <c>ERCache.Redis</c> implements it on StackExchange.Redis.
/// </summary>
/// <remarks>
/// All of one user's keys live together (<c>ERCache.Redis</c> hash-tags them by the user), so a user's values share a
/// cluster slot and no command spans slots. The regional tier bounds every call by its timeout and a
/// circuit breaker, and checks every value it reads: an implementation never needs to validate values.
/// </remarks>
public interface IRegionalStore
{
    /// <summary>Reads field <paramref name="field"/> of every user in <paramref name="users"/> in one round trip.</summary>
    /// <param name="field">The field: the model and its version.</param>
    /// <param name="users">The users.</param>
    /// <param name="valueBytes">The length of every value the caller can use (the model's header and row). A store
    /// returns at most <paramref name="valueBytes"/> + 1 bytes of a value, cut on the server: the caller still sees that a
    /// longer value is not its own, and a value of megabytes written under the key by something else cannot hold up
    /// the round trip of every other user in it.</param>
    /// <param name="cancellationToken">Cancelled when the caller stops waiting.</param>
    /// <returns>One value per user, in order; <see langword="null"/> where the user has none.</returns>
    Task<byte[]?[]> ReadAsync(string field, ReadOnlyMemory<long> users, int valueBytes, CancellationToken cancellationToken);

    /// <summary>
    /// Writes every group in one round trip: each group is one write of one user's fields. Newer wins, atomically per
    /// user on the server: a field is written only when its <see cref="RegionalField.WrittenAtUnixMs"/> is later than
    /// the stamp of the value the store holds for it and of any removal of it or of the user still remembered (a write
    /// delayed by a slow flush or a reconnect must not replace a newer value, or bring back a removed one).
    /// </summary>
    /// <param name="groups">The users' fields; a group's fields all belong to its user.</param>
    /// <param name="cancellationToken">Cancelled at the write's timeout.</param>
    /// <returns>How many fields were not written because the store held something newer, and how many because their
    /// user's key refused them. Throw only when the round trip itself failed (no answer, a connection error): one key's
    /// error is that user's, reported in <see cref="RegionalWriteResult.Refused"/>.</returns>
    Task<RegionalWriteResult> WriteAsync(IReadOnlyList<RegionalWriteGroup> groups, CancellationToken cancellationToken);

    /// <summary>Deletes one field of a user's values, or all of them when <paramref name="field"/> is null, in one
    /// round trip, and remembers the removal for <paramref name="remember"/>: until then a write stamped at or before
    /// <paramref name="removedAtUnixMs"/> is not applied.</summary>
    /// <param name="userId">The user.</param>
    /// <param name="field">The field (model and version), or null for every field of the user.</param>
    /// <param name="removedAtUnixMs">When the removal was asked for (wall clock, Unix milliseconds).</param>
    /// <param name="remember">How long the removal's stamp is kept: the longest a value stamped before it could still be
    /// served (the longest failover TTL).</param>
    /// <param name="cancellationToken">Cancelled at the call's timeout.</param>
    Task RemoveAsync(long userId, string? field, long removedAtUnixMs, TimeSpan remember, CancellationToken cancellationToken);
}
