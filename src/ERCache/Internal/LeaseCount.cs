using System.Numerics;

namespace ERCache.Internal;

/// <summary>
/// Counts the users of something that must outlive them: one lease for the owner, one per piece of work in progress.
/// Whoever returns the last lease after <see cref="Close"/> runs the release given to the constructor, once, so work that
/// began before <see cref="Close"/> finishes on live resources, and nothing new begins after it.
/// </summary>
/// <remarks>
/// <para>The count is split into stripes, one per processor (modulo their number), each a <see cref="PaddedLong"/>. A miss
/// takes its leases on the caller's core and, when its inference runs on a dispatcher thread, returns them on that
/// thread's core: one shared count moved between the two cores twice per miss, for each of the cache's and the model
/// version's counts. The total matters only once closed, so only then are the stripes added up.</para>
/// <para>Why the total is exact when it matters: a lease counts only if its stripe was incremented before
/// <see cref="IsClosed"/> read false, so before <see cref="Close"/> marked it (each side a full fence); every total is
/// taken after that mark, so it sees every such lease. A lease taken after the mark is undone on its own stripe, and its
/// undo adds the stripes up again, so a total it inflated for a moment is followed by one that is not.</para>
/// <para>The ONNX adapter keeps its own count: it lives in another package and this type is not public.</para>
/// </remarks>
internal sealed class LeaseCount
{
    private static readonly int StripeMask = (int)BitOperations.RoundUpToPowerOf2((uint)Math.Clamp(Environment.ProcessorCount, 1, 64)) - 1;

    private readonly PaddedLong[] _stripes = new PaddedLong[StripeMask + 1];
    private readonly Action _release;
    private int _closed;
    private int _released;

    /// <param name="release">Runs once, on the thread that returns the last lease after <see cref="Close"/> (or in
    /// <see cref="Close"/> when nothing is in progress).</param>
    public LeaseCount(Action release)
    {
        _release = release;
        _stripes[0].Value = 1; // the owner's lease
    }

    /// <summary>Whether <see cref="Close"/> was called.</summary>
    public bool IsClosed => Volatile.Read(ref _closed) != 0;

    /// <summary>Takes a lease for work about to begin; false once closed (nothing new may begin).</summary>
    public bool TryAcquire()
    {
        if (IsClosed)
        {
            return false;
        }

        ref long stripe = ref ThisProcessorsStripe();
        Interlocked.Increment(ref stripe);
        if (!IsClosed)
        {
            return true;
        }

        Return(ref stripe); // closed meanwhile: undone on the same stripe, and released if this was the last
        return false;
    }

    /// <summary>Returns a lease taken by <see cref="TryAcquire"/>, on any thread.</summary>
    public void Release() => Return(ref ThisProcessorsStripe());

    /// <summary>Stops new leases and returns the owner's. True when this released the resources (nothing was in
    /// progress); false when the last lease in progress will, or when already closed.</summary>
    public bool Close() => Interlocked.Exchange(ref _closed, 1) == 0 && Return(ref _stripes[0].Value);

    private bool Return(ref long stripe)
    {
        Interlocked.Decrement(ref stripe);
        if (!IsClosed || Total() != 0 || Interlocked.Exchange(ref _released, 1) != 0)
        {
            return false;
        }

        _release();
        return true;
    }

    private long Total()
    {
        long total = 0;
        for (int i = 0; i < _stripes.Length; i++)
        {
            total += Volatile.Read(ref _stripes[i].Value);
        }

        return total;
    }

    private ref long ThisProcessorsStripe() => ref _stripes[Thread.GetCurrentProcessorId() & StripeMask].Value;
}
