namespace ERCache.Benchmarks;

/// <summary>
/// The users a benchmark reads, as sets of equal size: one set for <see cref="UserDraw.Fixed"/>, many for
/// <see cref="UserDraw.Rotating"/>, each invocation taking the next. The first set is the same in both draws.
/// </summary>
/// <typeparam name="T">A user's key as the store under test takes it (an id, or a string for the string-keyed peers).</typeparam>
public sealed class UserSets<T>
{
    private readonly T[][] _sets;
    private int _next;

    public UserSets(T[][] sets)
    {
        ArgumentOutOfRangeException.ThrowIfZero(sets.Length);
        _sets = sets;
    }

    /// <summary>How many sets there are.</summary>
    public int Count => _sets.Length;

    /// <summary>The set the next invocation reads (the same one, when there is one set).</summary>
    public T[] Next()
    {
        var set = _sets[_next];
        _next = _next + 1 == _sets.Length ? 0 : _next + 1;
        return set;
    }

    /// <summary>The same sets with each id mapped (for the string-keyed peers).</summary>
    public UserSets<TKey> Select<TKey>(Func<T, TKey> key) => new([.. _sets.Select(set => set.Select(key).ToArray())]);

    /// <summary>The same sets, each cut into batches of <paramref name="size"/> (for the batch benchmarks).</summary>
    public UserSets<T[]> Chunk(int size) => new([.. _sets.Select(set => set.Chunk(size).ToArray())]);
}
