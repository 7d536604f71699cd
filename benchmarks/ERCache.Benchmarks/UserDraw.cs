namespace ERCache.Benchmarks;

/// <summary>Which users the hit and batch benchmarks read in each invocation (<see cref="UserSets"/>).</summary>
public enum UserDraw
{
    /// <summary>The same users in every invocation, drawn once with a fixed seed from the whole population (the method
    /// the peers were compared by first). 1,024 rows are about 1 MB, so at any store size the rows read stay in the
    /// CPU's caches: a large store's index is still probed at random, but its rows are not fetched from memory.</summary>
    Fixed,

    /// <summary>Each invocation reads the next of <see cref="UserDrawExtensions.RotatingSets"/> draws. At 1,000,000 entries about
    /// 512 MB of rows pass between two reads of one draw, far more than a last-level cache, so most reads fetch their
    /// row (and the store's index entries) from memory, as reads of a large store at random do.</summary>
    Rotating,
}
