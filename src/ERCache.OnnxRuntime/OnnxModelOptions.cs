using Microsoft.ML.OnnxRuntime;

namespace ERCache.OnnxRuntime;

/// <summary>
/// How one model's ONNX file is run; bound from <c>ERCache:Models:&lt;name&gt;:Onnx</c> by <c>AddOnnxModel</c>.
/// </summary>
public sealed class OnnxModelOptions
{
    /// <summary>The <c>.onnx</c> file; a relative path is resolved against the host's content root (the application's
    /// directory without a host).</summary>
    public string Path { get; set; } = "";

    /// <summary>The input the features go to: a float tensor of shape <c>[batch, features]</c>. When empty, the model's
    /// only input.</summary>
    public string? Input { get; set; }

    /// <summary>The output the embeddings come from: a float tensor of shape <c>[batch, Dimensions]</c>. When empty,
    /// the model's only output.</summary>
    public string? Output { get; set; }

    /// <summary>Threads one batch may use (ONNX Runtime's intra-op threads). Default 1: the cache already runs up to
    /// <c>MaxConcurrency</c> batches at once, one per thread.</summary>
    public int IntraOpThreads { get; set; } = 1;

    /// <summary>ONNX Runtime's graph optimisation level (default: all optimisations).</summary>
    public GraphOptimizationLevel OptimizationLevel { get; set; } = GraphOptimizationLevel.ORT_ENABLE_ALL;
}
