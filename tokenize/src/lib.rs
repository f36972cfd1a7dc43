pub mod fastai;
