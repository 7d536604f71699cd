namespace ERCache.Internal;

/// <summary>
/// The three one-element arrays a single user's miss hands to its model version: the user, the user's position and the
/// result. A set is reused on the thread that rented it when the miss completes there (an inline call of a synchronous
/// tower), so that miss allocates none. A miss completed on another thread (an inference thread, usually) leaves its set
/// to the garbage collector.
/// </summary>
/// <remarks>
/// Not <c>ArrayPool</c>: a miss completed on an inference thread would return its arrays into that thread's part of the
/// pool, and the caller's next miss would take them back from there. That is a round trip between the two cores for each
/// lock and slot of the pool, three arrays per miss. Allocating on the caller's thread instead made a miss with default
/// options 7–12 % faster (docs/benchmarks.md).
/// </remarks>
internal sealed class SingleMissBuffers
{
    [ThreadStatic]
    private static SingleMissBuffers? t_spare;

    private int _rentedOn;

    /// <summary>The user, as the one element of a request's users.</summary>
    public long[] User { get; } = new long[1];

    /// <summary>The user's position in the request: 0.</summary>
    public int[] Position { get; } = [0];

    /// <summary>Where the model version writes the user's result.</summary>
    public EmbeddingResult[] Result { get; } = new EmbeddingResult[1];

    /// <summary>This thread's spare set, or a new one.</summary>
    public static SingleMissBuffers Rent(long userId)
    {
        var buffers = t_spare ?? new SingleMissBuffers();
        t_spare = null;
        buffers._rentedOn = Environment.CurrentManagedThreadId;
        buffers.User[0] = userId;
        buffers.Position[0] = 0; // the model version compacts positions in place (a regional lookup)
        return buffers;
    }

    /// <summary>Keeps the set as this thread's spare when this is the thread that rented it. Call once the miss has
    /// completed: nothing reads or writes the set afterwards.</summary>
    public void Return()
    {
        if (_rentedOn == Environment.CurrentManagedThreadId)
        {
            Result[0] = default; // holds a model version's name
            t_spare = this;
        }
    }
}
