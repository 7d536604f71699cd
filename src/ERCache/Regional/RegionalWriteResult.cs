namespace ERCache.Regional;

/// <summary>
/// What a store did with one round trip of grouped writes (<see cref="IRegionalStore.WriteAsync"/>): every field it was
/// given was written, except <see cref="Late"/> ones and <see cref="Refused"/> ones.
/// </summary>
/// <param name="Late">Fields not written because the store held something newer: a newer value, or a removal it still
/// remembers (newer wins).</param>
/// <param name="Refused">Fields not written because their user's key refused the write (a key of another type, say):
/// that user's loss, never the round trip's, so the other users' fields are written and the call does not fail.</param>
public readonly record struct RegionalWriteResult(int Late, int Refused);
