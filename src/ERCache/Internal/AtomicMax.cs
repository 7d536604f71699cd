namespace ERCache.Internal;

/// <summary>A lock-free running maximum: a pending inference's latest deadline, and the tests' "most calls at once".</summary>
internal static class AtomicMax
{
    /// <summary>Raises <paramref name="target"/> to <paramref name="value"/> unless it is already at least that.</summary>
    public static void Raise(ref long target, long value)
    {
        long current = Interlocked.Read(ref target);
        while (value > current)
        {
            long seen = Interlocked.CompareExchange(ref target, value, current);
            if (seen == current)
            {
                return;
            }

            current = seen;
        }
    }

    /// <inheritdoc cref="Raise(ref long, long)"/>
    public static void Raise(ref int target, int value)
    {
        int current = Volatile.Read(ref target);
        while (value > current)
        {
            int seen = Interlocked.CompareExchange(ref target, value, current);
            if (seen == current)
            {
                return;
            }

            current = seen;
        }
    }
}
