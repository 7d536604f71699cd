namespace ERCache.Inference;

/// <summary>A direct hit chosen for drift sampling: the vector served and how old it was.</summary>
internal sealed class DriftSample(float[] served, TimeSpan age)
{
    public float[] Served { get; } = served;

    public TimeSpan Age { get; } = age;
}
