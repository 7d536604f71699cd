using ERCache.Storage;

namespace ERCache.Tiers;

/// <summary>
/// One slab of a huge-page tier made ready off the write path, in two steps on a scheduler: allocated (advised for huge
/// pages), then every 4 KB page of it faulted in. A writer may take the slab as soon as it is allocated. Faulting in
/// never changes a value (<see cref="HugePages.TouchEveryPage"/>), so the writes and reads that use the slab meanwhile
/// are safe; a page the second step has not reached yet when a write does is faulted in by that write, as it would be
/// without preparation. Once the writes come within 2 MB of the next page to fault in, the second step stops: a tier
/// filled faster than the kernel maps huge pages (a tight loop) faults the rest itself, as without preparation, rather
/// than have both threads fault the same huge page (a write then waited up to 51 ms).
/// </summary>
/// <remarks>
/// Why two steps: on this project's virtual machines a huge page's first touch took 4–25 ms, so faulting in a slab of
/// eight of them took longer than the writes of half a slab, and a slab waited for in full was often late. A late slab
/// used to be allocated by the write itself and faulted in by the writes, each 2 MB under the tier's lock. Taken once
/// allocated, the slab is faulted in ahead of the writes, which reach each 2 MB only after some thousand writes.
/// </remarks>
internal sealed class SlabPreparation
{
    private readonly int _slots;
    private readonly int _rowBytes;
    private readonly int _stride;
    private readonly Task _allocation;
    private byte[]? _slab; // published once allocated, after _advisedBytes
    private long _advisedBytes;
    private int _writtenTo = -1; // the highest slot of the slab a write has taken since the slab was taken
    private long _faultedInBytes;

    private SlabPreparation(int page, int slots, int rowBytes, TaskScheduler scheduler)
    {
        Page = page;
        _slots = slots;
        _rowBytes = rowBytes;
        _stride = SlotPage.StrideOf(rowBytes);
        _allocation = Task.Factory.StartNew(
            static state => ((SlabPreparation)state!).Allocate(), this, CancellationToken.None, TaskCreationOptions.DenyChildAttach, scheduler);
        Work = _allocation.ContinueWith(
            static (allocation, state) =>
            {
                allocation.GetAwaiter().GetResult(); // a fault in the allocation is the work's fault
                ((SlabPreparation)state!).FaultIn();
            },
            this,
            CancellationToken.None,
            TaskContinuationOptions.DenyChildAttach,
            scheduler);
    }

    /// <summary>The tier's page the slab is for.</summary>
    public int Page { get; }

    /// <summary>Both steps; completes once the slab is faulted in, or once its allocation ran out of memory.</summary>
    public Task Work { get; }

    /// <summary>Bytes of the slab the second step has faulted in (for tests).</summary>
    public long FaultedInBytes => Volatile.Read(ref _faultedInBytes);

    /// <summary>The slab once allocated (its pages may still be being faulted in); null before, or when memory ran out.</summary>
    public byte[]? Slab => Volatile.Read(ref _slab);

    /// <summary>Starts preparing <paramref name="slots"/> slots of <paramref name="rowBytes"/> for
    /// <paramref name="page"/> on <paramref name="scheduler"/>, without the caller's execution context (its activity and
    /// async locals are not the work's). Holds no reference to the tier.</summary>
    public static SlabPreparation Start(int page, int slots, int rowBytes, TaskScheduler scheduler)
    {
        if (ExecutionContext.IsFlowSuppressed())
        {
            return new SlabPreparation(page, slots, rowBytes, scheduler);
        }

        using (ExecutionContext.SuppressFlow())
        {
            return new SlabPreparation(page, slots, rowBytes, scheduler);
        }
    }

    /// <summary>The slab and the bytes of it advised for huge pages, when it is allocated; null while it is not (the
    /// writer then allocates rather than wait under its lock) or when memory ran out. A fault other than running out of
    /// memory is a bug and is rethrown here, to the writer. A fault in faulting in after the slab was taken shows as an
    /// unobserved task exception.</summary>
    public (byte[] Slab, long AdvisedBytes)? TryTake()
    {
        if (_allocation.IsFaulted || Work.IsFaulted)
        {
            (_allocation.IsFaulted ? _allocation : Work).GetAwaiter().GetResult();
        }

        return Slab is { } slab ? (slab, Volatile.Read(ref _advisedBytes)) : null;
    }

    /// <summary>A write took slot <paramref name="slot"/> of the slab (slots are taken in order). Under the tier's lock.</summary>
    public void Wrote(int slot) => Volatile.Write(ref _writtenTo, slot);

    private void Allocate()
    {
        try
        {
            var slab = SlotPage.AllocateSlab(_slots, _rowBytes, hugePages: true, out long advised);
            Volatile.Write(ref _advisedBytes, advised);
            Volatile.Write(ref _slab, slab);
        }
        catch (OutOfMemoryException)
        {
            // The write that needs the slab allocates it itself, and fails there if memory is still short.
        }
    }

    private void FaultIn()
    {
        if (Slab is not { } slab)
        {
            return;
        }

        for (int chunk = 0; chunk < slab.Length; chunk += HugePages.PageBytes)
        {
            int written = Volatile.Read(ref _writtenTo);
            if (written >= 0 && ((long)written * _stride) + HugePages.PageBytes > chunk)
            {
                return; // the writes are within 2 MB: they fault the rest in
            }

            int length = Math.Min(HugePages.PageBytes, slab.Length - chunk);
            HugePages.TouchEveryPage(slab.AsSpan(chunk, length));
            Volatile.Write(ref _faultedInBytes, chunk + (long)length);
        }
    }
}
