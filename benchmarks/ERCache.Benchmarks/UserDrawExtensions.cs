namespace ERCache.Benchmarks;

/// <summary>Draws the <see cref="UserSets{T}"/> of a <see cref="UserDraw"/>.</summary>
public static class UserDrawExtensions
{
    /// <summary>How many sets <see cref="UserDraw.Rotating"/> cycles through.</summary>
    public const int RotatingSets = 512;

    /// <summary>Sets of <paramref name="size"/> ids in <c>[0, entries)</c> drawn at random with <paramref name="seed"/>:
    /// one for <see cref="UserDraw.Fixed"/>, <see cref="RotatingSets"/> for <see cref="UserDraw.Rotating"/> (its first
    /// set is the fixed draw's).</summary>
    public static UserSets<long> Sets(this UserDraw draw, int entries, int size, int seed)
    {
        var rng = new Random(seed);
        int count = draw == UserDraw.Rotating ? RotatingSets : 1;
        return new([.. Enumerable.Range(0, count).Select(_ => Enumerable.Range(0, size).Select(_ => (long)rng.Next(entries)).ToArray())]);
    }
}
